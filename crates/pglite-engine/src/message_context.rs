//! Where the runtime forgets to reset PostgreSQL's `MessageContext`, found in its code.
//!
//! Native PostgreSQL frees everything a protocol message allocated by resetting
//! `MessageContext` at the top of its main loop (`MemoryContextSwitchTo(MessageContext);
//! MemoryContextReset(MessageContext);`). The runtime's `interactive_one`, which stands
//! in for one turn of that loop, keeps the switch but compiles the reset to nothing, so
//! every exchange leaks ~1–7 KB of guest memory until the 4 GiB limit (docs/RUNTIME.md).
//!
//! The module has no name section, so the pieces are recognised by their code:
//!
//! - `clear_error` (exported) switches to `TopMemoryContext` and then calls
//!   `FlushErrorState`, whose body ends with `MemoryContextReset(ErrorContext)`: that
//!   gives the function index of `MemoryContextReset` and the global holding the address
//!   of `CurrentMemoryContext`;
//! - `interactive_one` (exported) switches `CurrentMemoryContext` to another context
//!   first: that is `MessageContext`, and the reset belongs right after that switch.
//!
//! A `MemoryContextSwitchTo(ctx)` inlined by clang reads, with `G(x)` the global holding
//! the address of `x`: `global.get G(ctx); i32.load; local.set l; global.get
//! G(CurrentMemoryContext); local.get l; i32.store`.

use wasmparser::{Operator, Parser, Payload, TypeRef};

use super::ModuleError;

/// Export name of the function that handles one exchange.
const INTERACTIVE_ONE: &str = "interactive_one";
/// Export name of the function the host calls to recover from an error.
const CLEAR_ERROR: &str = "clear_error";
/// `FlushErrorState` is a handful of stores and one call; anything longer is not it.
const FLUSH_ERROR_STATE_MAX_OPERATORS: usize = 32;

/// Where and how to insert `MemoryContextReset(MessageContext)` (original indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageReset {
    /// Function index of `interactive_one`.
    pub interactive_one: u32,
    /// Index of the operator in its body after which the reset goes (the store that
    /// makes `MessageContext` current).
    pub after_operator: usize,
    /// Global holding the address of the `MessageContext` variable.
    pub message_context: u32,
    /// Function index of `MemoryContextReset`.
    pub memory_context_reset: u32,
}

/// Find where `MessageContext` should be reset. `None` when the module is not the
/// runtime (it exports neither function) or already resets it there; an error when it
/// looks like the runtime but the code does not have the expected shape.
pub fn find(wasm: &[u8]) -> Result<Option<MessageReset>, ModuleError> {
    let module = Functions::parse(wasm)?;
    let (Some(interactive_one), Some(clear_error)) =
        (module.export(INTERACTIVE_ONE), module.export(CLEAR_ERROR))
    else {
        return Ok(None);
    };
    let unexpected = |what: &str| {
        ModuleError(format!(
            "cannot find {what} in the runtime's code; not the PGlite runtime this crate knows"
        ))
    };

    let clear_ops = module.operators(clear_error)?;
    let top = switches(&clear_ops)
        .next()
        .ok_or_else(|| unexpected("the switch to TopMemoryContext in clear_error"))?;
    let flush_error_state = clear_ops[top.at..]
        .iter()
        .find_map(|op| match op {
            Operator::Call { function_index } => Some(*function_index),
            _ => None,
        })
        .ok_or_else(|| unexpected("the call of FlushErrorState in clear_error"))?;
    let flush_ops = module.operators(flush_error_state)?;
    let memory_context_reset = match flush_ops.as_slice() {
        [
            ..,
            Operator::GlobalGet { .. },
            Operator::I32Load { memarg },
            Operator::Call { function_index },
            Operator::End,
        ] if memarg.offset == 0 && flush_ops.len() <= FLUSH_ERROR_STATE_MAX_OPERATORS => {
            *function_index
        }
        _ => {
            return Err(unexpected(
                "MemoryContextReset(ErrorContext) in FlushErrorState",
            ));
        }
    };
    if !module.takes_one_i32(memory_context_reset)? {
        return Err(unexpected("MemoryContextReset of type (i32) -> ()"));
    }

    let ops = module.operators(interactive_one)?;
    let switch = switches(&ops)
        .find(|s| s.current == top.current && s.source != top.source)
        .ok_or_else(|| unexpected("the switch to MessageContext in interactive_one"))?;
    let message_context = switch.source;
    let already_resets = ops.windows(3).any(|w| {
        matches!(w, [Operator::GlobalGet { global_index }, Operator::I32Load { .. }, Operator::Call { function_index }]
            if *global_index == message_context && *function_index == memory_context_reset)
    });
    if already_resets {
        return Ok(None);
    }
    Ok(Some(MessageReset {
        interactive_one,
        after_operator: switch.at,
        message_context,
        memory_context_reset,
    }))
}

/// The instructions inserted: `if (MessageContext) MemoryContextReset(MessageContext);`
/// with `reset` the (possibly renumbered) index of `MemoryContextReset`.
pub fn reset_instructions(
    message_context: u32,
    reset: u32,
) -> [wasm_encoder::Instruction<'static>; 9] {
    use wasm_encoder::{BlockType, Instruction as I, MemArg};
    let load = MemArg {
        offset: 0,
        align: 2,
        memory_index: 0,
    };
    [
        I::Block(BlockType::Empty),
        I::GlobalGet(message_context),
        I::I32Load(load),
        I::I32Eqz,
        I::BrIf(0),
        I::GlobalGet(message_context),
        I::I32Load(load),
        I::Call(reset),
        I::End,
    ]
}

/// An inlined `MemoryContextSwitchTo` found in a body.
#[derive(Debug, Clone, Copy)]
struct Switch {
    /// Index of its final `i32.store`.
    at: usize,
    /// Global holding the address of the context made current.
    source: u32,
    /// Global holding the address of `CurrentMemoryContext`.
    current: u32,
}

/// Every inlined `MemoryContextSwitchTo` in `ops`, in order.
fn switches<'o>(ops: &'o [Operator<'_>]) -> impl Iterator<Item = Switch> + 'o {
    ops.windows(6).enumerate().filter_map(|(i, w)| match w {
        [
            Operator::GlobalGet {
                global_index: source,
            },
            Operator::I32Load { memarg: load },
            Operator::LocalSet { local_index: set },
            Operator::GlobalGet {
                global_index: current,
            },
            Operator::LocalGet { local_index: get },
            Operator::I32Store { memarg: store },
        ] if load.offset == 0 && store.offset == 0 && set == get => Some(Switch {
            at: i + 5,
            source: *source,
            current: *current,
        }),
        _ => None,
    })
}

/// What the search needs from a module: exports, function types and bodies.
struct Functions<'a> {
    exports: Vec<(&'a str, u32)>,
    /// Every type (`None` for non-function types).
    types: Vec<Option<wasmparser::FuncType>>,
    /// Type index of every function, imports first.
    function_types: Vec<u32>,
    imported: u32,
    bodies: Vec<wasmparser::FunctionBody<'a>>,
}

impl<'a> Functions<'a> {
    fn parse(wasm: &'a [u8]) -> Result<Functions<'a>, ModuleError> {
        let mut f = Functions {
            exports: Vec::new(),
            types: Vec::new(),
            function_types: Vec::new(),
            imported: 0,
            bodies: Vec::new(),
        };
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(super::parse_err)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(super::parse_err)?.into_types() {
                            f.types.push(match sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(t) => Some(t),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        if let TypeRef::Func(ty) | TypeRef::FuncExact(ty) =
                            import.map_err(super::parse_err)?.ty
                        {
                            f.function_types.push(ty);
                            f.imported += 1;
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        f.function_types.push(ty.map_err(super::parse_err)?);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(super::parse_err)?;
                        if export.kind == wasmparser::ExternalKind::Func {
                            f.exports.push((export.name, export.index));
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => f.bodies.push(body),
                _ => {}
            }
        }
        Ok(f)
    }

    fn export(&self, name: &str) -> Option<u32> {
        self.exports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, index)| index)
    }

    /// The operators of defined function `func`.
    fn operators(&self, func: u32) -> Result<Vec<Operator<'a>>, ModuleError> {
        let body = func
            .checked_sub(self.imported)
            .and_then(|i| self.bodies.get(i as usize))
            .ok_or_else(|| ModuleError(format!("function {func} has no body")))?;
        let mut reader = body.get_operators_reader().map_err(super::parse_err)?;
        let mut ops = Vec::new();
        while !reader.eof() {
            ops.push(reader.read().map_err(super::parse_err)?);
        }
        Ok(ops)
    }

    /// Whether function `func` has type `(i32) -> ()`.
    fn takes_one_i32(&self, func: u32) -> Result<bool, ModuleError> {
        let ty = self
            .function_types
            .get(func as usize)
            .and_then(|&t| self.types.get(t as usize))
            .and_then(Option::as_ref)
            .ok_or_else(|| ModuleError(format!("function {func} has no function type")))?;
        Ok(ty.params() == [wasmparser::ValType::I32] && ty.results().is_empty())
    }
}
