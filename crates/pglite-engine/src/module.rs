//! Load-time rewrite of the PGlite module.
//!
//! Two changes are made, in one re-encoding pass:
//!
//! 1. **Move the C stack out of the transfer buffer.** The pinned runtime keeps its
//!    stack in `[0, 128 KiB)` (global 0 starts at 131072) while the CMA transfer buffer
//!    is `[1, 2 MiB + 1)`, so any reply longer than about 128 KB overwrites live stack
//!    frames. The rewrite grows memory 0's initial size by `stack_pages` pages and starts
//!    the stack pointer at the new end of memory, giving an independent stack above the
//!    old heap end. dlmalloc treats the next `sbrk` region as non-contiguous and carries
//!    on. Global 0 is also exported as `__stack_pointer` so the host can restore it after
//!    a trap.
//! 2. **Hook `path_open`.** A function import [`HOOK_MODULE`].[`HOOK_PATH_OPEN`] of type
//!    `(dirfd: i32, path_ptr: i32, path_len: i32) -> ()` is appended to the imports, and
//!    a wrapper function is appended to the defined functions. The wrapper has the type of
//!    `wasi_snapshot_preview1.path_open`, calls the hook with its directory descriptor and
//!    path, then forwards all arguments to the real `path_open`. Every reference to the
//!    `path_open` import (calls, `ref.func`, element segments, exports, start) is
//!    redirected to the wrapper; every defined function's index shifts up by one because
//!    of the new import.
//!
//! 3. **Reset `MessageContext` in `interactive_one`.** The runtime switches to
//!    PostgreSQL's per-message memory context at the start of every exchange but never
//!    resets it, so each query leaked guest memory. The rewrite inserts
//!    `MemoryContextReset(MessageContext)` right after that switch, where native
//!    PostgreSQL's main loop has it; both are found in the code
//!    ([`message_context`](self::message_context)).
//!
//! Every layout fact checked here belongs to one exact module; a module with another
//! hash is refused rather than patched blindly (see docs/RUNTIME.md).
//!
//! The build script compiles this file too (`#[path]`), to compile the rewritten module
//! ahead of time: it depends on nothing but `wasmparser` and `wasm-encoder`.

#[path = "message_context.rs"]
pub mod message_context;

use wasm_encoder::reencode::{self, Reencode, utils};
use wasmparser::{Operator, Parser, Payload, TypeRef, ValType};

/// Linear-memory size of the unpatched module, in 64 KiB pages.
pub const ORIGINAL_MEMORY_PAGES: u64 = 76;
/// Initial stack pointer of the unpatched module.
pub const ORIGINAL_STACK_POINTER: i32 = 131_072;
/// Default size of the relocated stack, in 64 KiB pages (8 MiB).
pub const DEFAULT_STACK_PAGES: u64 = 128;
/// Name under which the patched module exports the stack-pointer global.
pub const STACK_POINTER_EXPORT: &str = "__stack_pointer";
/// Import module of the hooks added by the rewrite.
pub const HOOK_MODULE: &str = "pglite";
/// Import name of the hook called before every `path_open`:
/// `(dirfd: i32, path_ptr: i32, path_len: i32) -> ()`.
pub const HOOK_PATH_OPEN: &str = "before_path_open";
/// Version of the rewrite; part of the compiled-module cache key. Bump on any change to
/// what [`rewrite_module`] emits.
pub const REWRITE_VERSION: u32 = 4;

/// The WASI module whose `path_open` is hooked.
const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// The hooked WASI function.
const PATH_OPEN: &str = "path_open";
/// Name-section name of the appended wrapper function.
const WRAPPER_NAME: &str = "pglite_path_open_wrapper";
/// Parameters of `path_open`: fd, dirflags, path, path_len, oflags, fs_rights_base,
/// fs_rights_inheriting, fdflags, result pointer.
const PATH_OPEN_PARAMS: [ValType; 9] = [
    ValType::I32,
    ValType::I32,
    ValType::I32,
    ValType::I32,
    ValType::I32,
    ValType::I64,
    ValType::I64,
    ValType::I32,
    ValType::I32,
];
/// Result of `path_open`: the errno.
const PATH_OPEN_RESULTS: [ValType; 1] = [ValType::I32];

const PAGE: u64 = 65_536;

/// Why a module cannot be rewritten: it is not the PGlite runtime whose layout this
/// crate knows, or it is not valid WebAssembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError(pub String);

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModuleError {}

/// Rewrite `wasm`: its stack moves to `stack_pages` fresh pages above the old memory end
/// (exported as [`STACK_POINTER_EXPORT`]), every call of
/// `wasi_snapshot_preview1.path_open` first calls [`HOOK_MODULE`].[`HOOK_PATH_OPEN`], and
/// `interactive_one` resets `MessageContext` where native PostgreSQL does.
pub fn rewrite_module(wasm: &[u8], stack_pages: u64) -> Result<Vec<u8>, ModuleError> {
    let new_pages = ORIGINAL_MEMORY_PAGES + stack_pages;
    let new_sp = i32::try_from(new_pages * PAGE)
        .map_err(|_| ModuleError(format!("stack of {stack_pages} pages is too large")))?;
    let layout = Layout::scan(wasm)?;
    let mut rewriter = Rewriter {
        layout,
        new_pages,
        new_sp,
        saw_memory: false,
        saw_global: false,
        saw_export: false,
        saw_function: false,
        saw_code: false,
        bodies_seen: 0,
    };
    let mut out = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut out, Parser::new(0), wasm)
        .map_err(reencode_err)?;
    if !rewriter.saw_memory || !rewriter.saw_global || !rewriter.saw_export {
        return Err(ModuleError(
            "module defines no memory, no globals or no exports; not the PGlite runtime".into(),
        ));
    }
    if !rewriter.saw_function || !rewriter.saw_code {
        return Err(ModuleError(
            "module defines no functions; not the PGlite runtime".into(),
        ));
    }
    Ok(out.finish())
}

/// Lower the runtime's built-in `shared_buffers` from 128 MB to 16 MB.
///
/// The backend's command line is compiled into the runtime (a C string in a data
/// segment) and outranks every configuration file, so the value can only change here.
/// 128 MB of buffers inside a 32-bit guest cost ~110 MB of RSS per open database and
/// ~60 ms per start; the host's page cache sits below the guest anyway.
pub fn patch_settings(wasm: &mut [u8]) -> Result<(), ModuleError> {
    replace_once(wasm, SHARED_BUFFERS_ARG, SHARED_BUFFERS_PATCHED)
}

/// The runtime's built-in `shared_buffers` argument.
pub const SHARED_BUFFERS_ARG: &[u8] = b"shared_buffers=128MB\0";
/// What the rewrite puts in its place (same length, NUL-padded).
pub const SHARED_BUFFERS_PATCHED: &[u8] = b"shared_buffers=16MB\0\0";

/// Replace the single occurrence of `from` in `bytes` by `to` (same length).
fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) -> Result<(), ModuleError> {
    assert_eq!(from.len(), to.len(), "in-place patches keep the length");
    let mut found = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i);
    let (Some(at), None) = (found.next(), found.next()) else {
        return Err(ModuleError(format!(
            "expected exactly one {:?} in the module",
            String::from_utf8_lossy(from)
        )));
    };
    bytes[at..at + to.len()].copy_from_slice(to);
    Ok(())
}

/// Index facts gathered before the rewrite.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Number of types in the type section (across all rec groups).
    types: u32,
    /// Number of imported functions.
    func_imports: u32,
    /// Number of defined functions.
    defined: u32,
    /// Function index of the `path_open` import.
    path_open: u32,
    /// Type index of the `path_open` import.
    path_open_type: u32,
    /// Where `interactive_one` gets its `MessageContext` reset (`None`: not needed).
    message_reset: Option<message_context::MessageReset>,
}

impl Layout {
    fn scan(wasm: &[u8]) -> Result<Layout, ModuleError> {
        let mut func_types: Vec<Option<wasmparser::FuncType>> = Vec::new();
        let mut func_imports = 0u32;
        let mut defined = 0u32;
        let mut path_open = None;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(parse_err)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(parse_err)?.into_types() {
                            func_types.push(match sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(parse_err)?;
                        match import.ty {
                            TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                                if import.module == WASI_MODULE && import.name == PATH_OPEN {
                                    path_open = Some((func_imports, ty));
                                }
                                func_imports += 1;
                            }
                            // Global 0 and memory 0 must be the module's own.
                            TypeRef::Global(_) | TypeRef::Memory(_) => {
                                return Err(ModuleError(format!(
                                    "module imports {}.{}; not the PGlite runtime",
                                    import.module, import.name
                                )));
                            }
                            TypeRef::Table(_) | TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(reader) => defined = reader.count(),
                // Nothing needed by the scan follows the code section.
                Payload::CodeSectionStart { .. } => break,
                _ => {}
            }
        }
        let (path_open, path_open_type) = path_open.ok_or_else(|| {
            ModuleError(format!(
                "module does not import {WASI_MODULE}.{PATH_OPEN}; not the PGlite runtime"
            ))
        })?;
        let signature_ok = func_types
            .get(path_open_type as usize)
            .and_then(Option::as_ref)
            .is_some_and(|f| f.params() == PATH_OPEN_PARAMS && f.results() == PATH_OPEN_RESULTS);
        if !signature_ok {
            return Err(ModuleError(format!(
                "{WASI_MODULE}.{PATH_OPEN} has an unexpected type"
            )));
        }
        let too_many = || ModuleError("too many functions or types".into());
        Ok(Layout {
            types: u32::try_from(func_types.len()).map_err(|_| too_many())?,
            func_imports,
            defined,
            path_open,
            path_open_type,
            message_reset: message_context::find(wasm)?,
        })
    }

    /// Function index of the hook import (appended after the last function import).
    fn hook(&self) -> u32 {
        self.func_imports
    }

    /// Function index of the wrapper (appended after the last defined function).
    fn wrapper(&self) -> u32 {
        self.func_imports + 1 + self.defined
    }

    /// Type index of the hook's function type (appended after the last type).
    fn hook_type(&self) -> u32 {
        self.types
    }

    /// New index of function `func` without redirecting `path_open`: the index space
    /// after the new import, used where each function keeps its own identity (names).
    fn shifted(&self, func: u32) -> u32 {
        if func < self.func_imports {
            func
        } else {
            func + 1
        }
    }
}

/// The [`Reencode`] implementation performing the rewrite.
struct Rewriter {
    layout: Layout,
    new_pages: u64,
    new_sp: i32,
    saw_memory: bool,
    saw_global: bool,
    saw_export: bool,
    saw_function: bool,
    saw_code: bool,
    /// Function bodies re-encoded so far.
    bodies_seen: u32,
}

type ReencodeResult<T = ()> = Result<T, reencode::Error<ModuleError>>;

fn user_err(message: String) -> reencode::Error<ModuleError> {
    reencode::Error::UserError(ModuleError(message))
}

impl Reencode for Rewriter {
    type Error = ModuleError;

    fn function_index(&mut self, func: u32) -> ReencodeResult<u32> {
        Ok(if func == self.layout.path_open {
            self.layout.wrapper()
        } else {
            self.layout.shifted(func)
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> ReencodeResult {
        utils::parse_type_section(self, types, section)?;
        types.ty().function([wasm_encoder::ValType::I32; 3], []);
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> ReencodeResult {
        utils::parse_import_section(self, imports, section)?;
        imports.import(
            HOOK_MODULE,
            HOOK_PATH_OPEN,
            wasm_encoder::EntityType::Function(self.layout.hook_type()),
        );
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> ReencodeResult {
        self.saw_function = true;
        utils::parse_function_section(self, functions, section)?;
        functions.function(self.layout.path_open_type);
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> ReencodeResult {
        self.saw_code = true;
        utils::parse_code_section(self, code, section)?;
        // The wrapper's indices are final ones: not passed through `function_index`.
        let mut wrapper = wasm_encoder::Function::new([]);
        let mut body = wrapper.instructions();
        body.local_get(0)
            .local_get(2)
            .local_get(3)
            .call(self.layout.hook());
        for param in 0..PATH_OPEN_PARAMS.len() as u32 {
            body.local_get(param);
        }
        body.call(self.layout.path_open).end();
        code.function(&wrapper);
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> ReencodeResult {
        let index = self.layout.func_imports + self.bodies_seen;
        self.bodies_seen += 1;
        let Some(reset) = self
            .layout
            .message_reset
            .filter(|r| r.interactive_one == index)
        else {
            return utils::parse_function_body(self, code, func);
        };
        let mut function = self.new_function_with_parsed_locals(&func)?;
        let mut reader = func.get_operators_reader()?;
        let mut position = 0;
        while !reader.eof() {
            function.instruction(&self.parse_instruction(&mut reader)?);
            if position == reset.after_operator {
                let callee = self.function_index(reset.memory_context_reset)?;
                for instruction in
                    message_context::reset_instructions(reset.message_context, callee)
                {
                    function.instruction(&instruction);
                }
            }
            position += 1;
        }
        code.function(&function);
        Ok(())
    }

    fn parse_memory_section(
        &mut self,
        memories: &mut wasm_encoder::MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> ReencodeResult {
        self.saw_memory = true;
        for (index, memory) in section.into_iter().enumerate() {
            let mut memory = memory?;
            if index == 0 {
                if memory.initial != ORIGINAL_MEMORY_PAGES {
                    return Err(user_err(format!(
                        "unexpected memory layout: {} initial pages, expected {ORIGINAL_MEMORY_PAGES}",
                        memory.initial
                    )));
                }
                memory.initial = self.new_pages;
                if let Some(max) = memory.maximum {
                    memory.maximum = Some(max.max(self.new_pages));
                }
            }
            memories.memory(self.memory_type(memory)?);
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> ReencodeResult {
        self.saw_global = true;
        for (index, global) in section.into_iter().enumerate() {
            let global = global?;
            if index == 0 {
                check_stack_pointer(&global).map_err(reencode::Error::UserError)?;
                let ty = self.global_type(global.ty)?;
                globals.global(ty, &wasm_encoder::ConstExpr::i32_const(self.new_sp));
            } else {
                utils::parse_global(self, globals, global)?;
            }
        }
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> ReencodeResult {
        self.saw_export = true;
        let mut exported = false;
        for export in section.clone() {
            exported |= export?.name == STACK_POINTER_EXPORT;
        }
        utils::parse_export_section(self, exports, section)?;
        if !exported {
            exports.export(STACK_POINTER_EXPORT, wasm_encoder::ExportKind::Global, 0);
        }
        Ok(())
    }

    /// Function, local and label names keep naming the same functions (the `path_open`
    /// import keeps its name); the hook and the wrapper get names of their own.
    fn parse_custom_name_subsection(
        &mut self,
        names: &mut wasm_encoder::NameSection,
        section: wasmparser::Name<'_>,
    ) -> ReencodeResult {
        let layout = self.layout;
        let shift = |func: u32| -> ReencodeResult<u32> { Ok(layout.shifted(func)) };
        match section {
            wasmparser::Name::Function(map) => {
                let mut entries = Vec::new();
                for naming in map {
                    let naming = naming?;
                    entries.push((layout.shifted(naming.index), naming.name));
                }
                entries.push((layout.hook(), HOOK_PATH_OPEN));
                entries.push((layout.wrapper(), WRAPPER_NAME));
                // Stable: keeps the input order of any duplicate indices.
                entries.sort_by_key(|&(index, _)| index);
                let mut map = wasm_encoder::NameMap::new();
                for (index, name) in entries {
                    map.append(index, name);
                }
                names.functions(&map);
            }
            wasmparser::Name::Local(map) => names.locals(&utils::indirect_name_map(map, shift)?),
            wasmparser::Name::Label(map) => names.labels(&utils::indirect_name_map(map, shift)?),
            other => utils::parse_custom_name_subsection(self, names, other)?,
        }
        Ok(())
    }
}

fn check_stack_pointer(global: &wasmparser::Global<'_>) -> Result<(), ModuleError> {
    let mut ops = global.init_expr.get_operators_reader();
    let first = ops.read().map_err(module_err)?;
    let ok = global.ty.mutable
        && matches!(first, Operator::I32Const { value } if value == ORIGINAL_STACK_POINTER);
    if ok {
        Ok(())
    } else {
        Err(ModuleError(format!(
            "global 0 is not the expected stack pointer (mutable i32 = {ORIGINAL_STACK_POINTER})"
        )))
    }
}

fn module_err(e: impl std::fmt::Display) -> ModuleError {
    ModuleError(e.to_string())
}

fn parse_err(e: wasmparser::BinaryReaderError) -> ModuleError {
    ModuleError(format!("invalid module: {e}"))
}

fn reencode_err(e: reencode::Error<ModuleError>) -> ModuleError {
    match e {
        reencode::Error::UserError(e) => e,
        reencode::Error::ParseError(e) => parse_err(e),
        other => ModuleError(format!("cannot rewrite module: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use wasm_encoder::{
        CodeSection, ConstExpr, ElementSection, Elements, EntityType, ExportKind, ExportSection,
        Function, FunctionSection, GlobalSection, GlobalType, ImportSection, MemorySection,
        MemoryType, Module, NameMap, NameSection, RefType, TableSection, TableType, TypeSection,
        ValType as EValType,
    };
    use wasmparser::{Validator, WasmFeatures};

    use super::*;

    const STACK_PAGES: u64 = 16;

    /// Imports fd_close (0), path_open (1), proc_exit (2); defines `open` (3), which calls
    /// path_open, and `run` (4), which calls `open`, path_open and, through the table,
    /// path_open again; the table holds [open, path_open].
    fn sample_module(memory_pages: u64) -> Vec<u8> {
        let mut types = TypeSection::new();
        let open_params = PATH_OPEN_PARAMS.map(|t| match t {
            ValType::I64 => EValType::I64,
            _ => EValType::I32,
        });
        types.ty().function(open_params, [EValType::I32]); // 0: path_open
        types.ty().function([EValType::I32], [EValType::I32]); // 1: fd_close
        types.ty().function([EValType::I32], []); // 2: proc_exit
        types.ty().function([], [EValType::I32]); // 3: open, run

        let mut imports = ImportSection::new();
        imports.import(WASI_MODULE, "fd_close", EntityType::Function(1));
        imports.import(WASI_MODULE, PATH_OPEN, EntityType::Function(0));
        imports.import(WASI_MODULE, "proc_exit", EntityType::Function(2));

        let mut functions = FunctionSection::new();
        functions.function(3).function(3);

        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: 2,
            maximum: Some(2),
            shared: false,
        });

        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: memory_pages,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });

        let mut globals = GlobalSection::new();
        globals.global(
            GlobalType {
                val_type: EValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(ORIGINAL_STACK_POINTER),
        );
        globals.global(
            GlobalType {
                val_type: EValType::I32,
                mutable: false,
                shared: false,
            },
            &ConstExpr::i32_const(5),
        );

        let mut exports = ExportSection::new();
        exports.export("run", ExportKind::Func, 4);
        exports.export("open_again", ExportKind::Func, 1);
        exports.export("memory", ExportKind::Memory, 0);

        let mut elements = ElementSection::new();
        elements.active(
            None,
            &ConstExpr::i32_const(0),
            Elements::Functions(vec![3, 1].into()),
        );

        let mut code = CodeSection::new();
        let push_open_args = |f: &mut Function| {
            let mut sink = f.instructions();
            for t in PATH_OPEN_PARAMS {
                match t {
                    ValType::I64 => sink.i64_const(0),
                    _ => sink.i32_const(0),
                };
            }
        };
        let mut open = Function::new([]);
        push_open_args(&mut open);
        open.instructions().call(1).end();
        code.function(&open);
        let mut run = Function::new([]);
        run.instructions().call(3).drop();
        push_open_args(&mut run);
        run.instructions().call(1).drop();
        push_open_args(&mut run);
        run.instructions().i32_const(1).call_indirect(0, 0).drop();
        // ref.func of the import, then a plain call of another import (fd_close).
        run.instructions()
            .ref_func(1)
            .drop()
            .i32_const(3)
            .call(0)
            .drop()
            .i32_const(0)
            .end();
        code.function(&run);

        let mut names = NameSection::new();
        let mut fnames = NameMap::new();
        fnames.append(0, "fd_close");
        fnames.append(1, "path_open");
        fnames.append(2, "proc_exit");
        fnames.append(3, "open");
        fnames.append(4, "run");
        names.functions(&fnames);

        let mut module = Module::new();
        module
            .section(&types)
            .section(&imports)
            .section(&functions)
            .section(&tables)
            .section(&memories)
            .section(&globals)
            .section(&exports)
            .section(&elements)
            .section(&code)
            .section(&names)
            .section(&wasm_encoder::CustomSection {
                name: "producers-ish".into(),
                data: b"keep me".as_slice().into(),
            });
        let wasm = module.finish();
        validate(&wasm);
        wasm
    }

    fn validate(wasm: &[u8]) {
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(wasm)
            .expect("module validates");
    }

    /// Operators of every defined function body, in order.
    fn bodies(wasm: &[u8]) -> Vec<Vec<Operator<'_>>> {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let ops = body.get_operators_reader().unwrap();
                out.push(ops.into_iter().collect::<Result<Vec<_>, _>>().unwrap());
            }
        }
        out
    }

    fn calls(ops: &[Operator<'_>]) -> Vec<u32> {
        ops.iter()
            .filter_map(|op| match op {
                Operator::Call { function_index } => Some(*function_index),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rewrites_sample_module() {
        let wasm = sample_module(ORIGINAL_MEMORY_PAGES);
        let out = rewrite_module(&wasm, STACK_PAGES).unwrap();
        validate(&out);

        // Imports: the originals in order, then the hook (function index 3).
        const HOOK: u32 = 3;
        const OPEN: u32 = 4;
        const RUN: u32 = 5;
        const WRAPPER: u32 = 6;
        const PATH_OPEN_IMPORT: u32 = 1;
        let mut imports = Vec::new();
        let mut types = Vec::new();
        let mut functions = Vec::new();
        let mut exports = Vec::new();
        let mut elements = Vec::new();
        let mut function_names = Vec::new();
        let mut custom = Vec::new();
        let mut memory = None;
        let mut stack_pointer = None;
        for payload in Parser::new(0).parse_all(&out) {
            match payload.unwrap() {
                Payload::TypeSection(r) => {
                    for group in r {
                        let group = group.unwrap();
                        types.push(group.types().len());
                    }
                }
                Payload::ImportSection(r) => {
                    for i in r.into_imports() {
                        let i = i.unwrap();
                        imports.push((i.module.to_string(), i.name.to_string(), i.ty));
                    }
                }
                Payload::FunctionSection(r) => {
                    functions = r.into_iter().collect::<Result<Vec<_>, _>>().unwrap();
                }
                Payload::MemorySection(r) => memory = Some(r.into_iter().next().unwrap().unwrap()),
                Payload::GlobalSection(r) => {
                    let g = r.into_iter().next().unwrap().unwrap();
                    let mut ops = g.init_expr.get_operators_reader();
                    stack_pointer = Some(ops.read().unwrap());
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.unwrap();
                        exports.push((e.name.to_string(), e.kind, e.index));
                    }
                }
                Payload::ElementSection(r) => {
                    for e in r {
                        if let wasmparser::ElementItems::Functions(f) = e.unwrap().items {
                            elements.extend(f.into_iter().map(Result::unwrap));
                        }
                    }
                }
                Payload::CustomSection(c) => {
                    custom.push(c.name().to_string());
                    if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                        for name in names {
                            if let wasmparser::Name::Function(map) = name.unwrap() {
                                for n in map {
                                    let n = n.unwrap();
                                    function_names.push((n.index, n.name.to_string()));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }

        // Type section: the four originals, then the hook's type in a group of its own.
        assert_eq!(types, vec![1, 1, 1, 1, 1]);
        assert_eq!(
            imports,
            vec![
                (WASI_MODULE.into(), "fd_close".into(), TypeRef::Func(1)),
                (WASI_MODULE.into(), PATH_OPEN.into(), TypeRef::Func(0)),
                (WASI_MODULE.into(), "proc_exit".into(), TypeRef::Func(2)),
                (HOOK_MODULE.into(), HOOK_PATH_OPEN.into(), TypeRef::Func(4)),
            ]
        );
        // Two defined functions, then the wrapper with path_open's type.
        assert_eq!(functions, vec![3, 3, 0]);
        let memory = memory.unwrap();
        assert_eq!(memory.initial, ORIGINAL_MEMORY_PAGES + STACK_PAGES);
        assert!(matches!(
            stack_pointer,
            Some(Operator::I32Const { value }) if value as u64 == (ORIGINAL_MEMORY_PAGES + STACK_PAGES) * PAGE
        ));
        assert_eq!(
            exports,
            vec![
                ("run".into(), wasmparser::ExternalKind::Func, RUN),
                ("open_again".into(), wasmparser::ExternalKind::Func, WRAPPER),
                ("memory".into(), wasmparser::ExternalKind::Memory, 0),
                (
                    STACK_POINTER_EXPORT.into(),
                    wasmparser::ExternalKind::Global,
                    0
                ),
            ]
        );
        assert_eq!(elements, vec![OPEN, WRAPPER]);
        assert_eq!(
            custom,
            vec!["name".to_string(), "producers-ish".to_string()]
        );
        assert_eq!(
            function_names,
            vec![
                (0, "fd_close".into()),
                (1, "path_open".into()),
                (2, "proc_exit".into()),
                (HOOK, HOOK_PATH_OPEN.into()),
                (OPEN, "open".into()),
                (RUN, "run".into()),
                (WRAPPER, WRAPPER_NAME.into()),
            ]
        );

        let bodies = bodies(&out);
        assert_eq!(bodies.len(), 3);
        assert_eq!(calls(&bodies[0]), vec![WRAPPER]);
        assert_eq!(calls(&bodies[1]), vec![OPEN, WRAPPER, 0]);
        assert!(bodies[1].iter().any(
            |op| matches!(op, Operator::RefFunc { function_index } if *function_index == WRAPPER)
        ));
        let mut expected = vec![
            Operator::LocalGet { local_index: 0 },
            Operator::LocalGet { local_index: 2 },
            Operator::LocalGet { local_index: 3 },
            Operator::Call {
                function_index: HOOK,
            },
        ];
        expected.extend((0..9).map(|local_index| Operator::LocalGet { local_index }));
        expected.push(Operator::Call {
            function_index: PATH_OPEN_IMPORT,
        });
        expected.push(Operator::End);
        assert_eq!(bodies[2], expected);
    }

    #[test]
    fn refuses_unexpected_modules() {
        let wrong_memory = sample_module(ORIGINAL_MEMORY_PAGES + 1);
        assert!(matches!(
            rewrite_module(&wrong_memory, STACK_PAGES),
            Err(ModuleError(m)) if m.contains("memory layout")
        ));

        let mut no_path_open = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([EValType::I32], [EValType::I32]);
        let mut imports = ImportSection::new();
        imports.import(WASI_MODULE, "fd_close", EntityType::Function(0));
        no_path_open.section(&types).section(&imports);
        assert!(matches!(
            rewrite_module(&no_path_open.finish(), STACK_PAGES),
            Err(ModuleError(m)) if m.contains(PATH_OPEN)
        ));

        assert!(matches!(
            rewrite_module(b"\0asm\x01\0\0\0\x01", STACK_PAGES),
            Err(ModuleError(_))
        ));
    }

    #[test]
    fn rewrites_the_runtime_module() {
        let runtime = pglite_assets::install().expect("runtime installs");
        let wasm = std::fs::read(runtime.module_path()).unwrap();
        let started = Instant::now();
        let out = rewrite_module(&wasm, DEFAULT_STACK_PAGES).unwrap();
        let elapsed = started.elapsed();
        eprintln!(
            "rewrite of {} ({} bytes -> {} bytes) took {:.3} s",
            runtime.module_path().display(),
            wasm.len(),
            out.len(),
            elapsed.as_secs_f64()
        );
        validate(&out);

        let layout = Layout::scan(&wasm).unwrap();
        let before = bodies(&wasm);
        let after = bodies(&out);
        assert_eq!(after.len(), before.len() + 1);
        let count = |bodies: &[Vec<Operator<'_>>], target: u32| -> usize {
            bodies
                .iter()
                .map(|b| calls(b).iter().filter(|&&c| c == target).count())
                .sum()
        };
        let original_calls = count(&before, layout.path_open);
        assert!(original_calls > 0);
        assert_eq!(
            count(&after[..before.len()], layout.wrapper()),
            original_calls
        );
        assert_eq!(count(&after[..before.len()], layout.path_open), 0);
        assert_eq!(
            calls(after.last().unwrap()),
            vec![layout.hook(), layout.path_open]
        );

        // The runtime does not reset MessageContext; the rewritten module does, once.
        let reset = layout
            .message_reset
            .expect("the runtime needs its MessageContext reset");
        let patched = &after[(reset.interactive_one - layout.func_imports) as usize];
        let original = &before[(reset.interactive_one - layout.func_imports) as usize];
        assert_eq!(patched.len(), original.len() + 9);
        let callee = layout.shifted(reset.memory_context_reset);
        assert_eq!(
            count(&after, callee),
            count(&before, reset.memory_context_reset) + 1
        );
        assert!(matches!(
            &patched[reset.after_operator + 6..reset.after_operator + 9],
            [
                Operator::GlobalGet { global_index },
                Operator::I32Load { .. },
                Operator::Call { function_index },
            ] if *global_index == reset.message_context && *function_index == callee
        ));
        assert_eq!(message_context::find(&out).unwrap(), None);
    }
}
