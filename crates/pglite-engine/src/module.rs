//! Load-time rewrite of the PGlite module: move the C stack out of the transfer buffer.
//!
//! The pinned runtime keeps its stack in `[0, 128 KiB)` (global 0 starts at 131072)
//! while the CMA transfer buffer is `[1, 2 MiB + 1)`, so any reply longer than about
//! 128 KB overwrites live stack frames. The rewrite grows memory 0's initial size by
//! `stack_pages` pages and starts the stack pointer at the new end of memory, giving an
//! independent stack above the old heap end. dlmalloc treats the next `sbrk` region as
//! non-contiguous and carries on. Global 0 is also exported as `__stack_pointer` so the
//! host can restore it after a trap.
//!
//! Every layout fact checked here belongs to one exact module; a module with another
//! hash is refused rather than patched blindly (see docs/RUNTIME.md).

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasmparser::{Operator, Parser, Payload};

use crate::EngineError;

/// Linear-memory size of the unpatched module, in 64 KiB pages.
pub const ORIGINAL_MEMORY_PAGES: u64 = 76;
/// Initial stack pointer of the unpatched module.
pub const ORIGINAL_STACK_POINTER: i32 = 131_072;
/// Default size of the relocated stack, in 64 KiB pages (8 MiB).
pub const DEFAULT_STACK_PAGES: u64 = 128;
/// Name under which the patched module exports the stack-pointer global.
pub const STACK_POINTER_EXPORT: &str = "__stack_pointer";

const PAGE: u64 = 65_536;

/// Rewrite `wasm` so its stack lives in `stack_pages` fresh pages above the old memory end.
pub fn relocate_stack(wasm: &[u8], stack_pages: u64) -> Result<Vec<u8>, EngineError> {
    let new_pages = ORIGINAL_MEMORY_PAGES + stack_pages;
    let new_sp = i32::try_from(new_pages * PAGE)
        .map_err(|_| EngineError::Module(format!("stack of {stack_pages} pages is too large")))?;
    let mut out = wasm_encoder::Module::new();
    let mut saw_memory = false;
    let mut saw_global = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| EngineError::Module(format!("invalid module: {e}")))?;
        match payload {
            Payload::MemorySection(reader) => {
                saw_memory = true;
                let mut section = wasm_encoder::MemorySection::new();
                for (index, memory) in reader.into_iter().enumerate() {
                    let mut memory = memory.map_err(module_err)?;
                    if index == 0 {
                        if memory.initial != ORIGINAL_MEMORY_PAGES {
                            return Err(EngineError::Module(format!(
                                "unexpected memory layout: {} initial pages, expected {ORIGINAL_MEMORY_PAGES}",
                                memory.initial
                            )));
                        }
                        memory.initial = new_pages;
                        if let Some(max) = memory.maximum {
                            memory.maximum = Some(max.max(new_pages));
                        }
                    }
                    section.memory(RoundtripReencoder.memory_type(memory).map_err(module_err)?);
                }
                out.section(&section);
            }
            Payload::GlobalSection(reader) => {
                saw_global = true;
                let mut section = wasm_encoder::GlobalSection::new();
                for (index, global) in reader.into_iter().enumerate() {
                    let global = global.map_err(module_err)?;
                    let ty = RoundtripReencoder.global_type(global.ty).map_err(module_err)?;
                    if index == 0 {
                        check_stack_pointer(&global)?;
                        section.global(ty, &wasm_encoder::ConstExpr::i32_const(new_sp));
                    } else {
                        let init = RoundtripReencoder
                            .const_expr(global.init_expr)
                            .map_err(module_err)?;
                        section.global(ty, &init);
                    }
                }
                out.section(&section);
            }
            Payload::ExportSection(reader) => {
                let mut section = wasm_encoder::ExportSection::new();
                let mut exported = false;
                for export in reader {
                    let export = export.map_err(module_err)?;
                    exported |= export.name == STACK_POINTER_EXPORT;
                    section.export(
                        export.name,
                        RoundtripReencoder.export_kind(export.kind).map_err(module_err)?,
                        export.index,
                    );
                }
                if !exported {
                    section.export(STACK_POINTER_EXPORT, wasm_encoder::ExportKind::Global, 0);
                }
                out.section(&section);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&wasm_encoder::RawSection {
                        id,
                        data: &wasm[range],
                    });
                }
            }
        }
    }
    if !saw_memory || !saw_global {
        return Err(EngineError::Module(
            "module defines no memory or no globals; not the PGlite runtime".into(),
        ));
    }
    Ok(out.finish())
}

fn check_stack_pointer(global: &wasmparser::Global<'_>) -> Result<(), EngineError> {
    let mut ops = global.init_expr.get_operators_reader();
    let first = ops.read().map_err(module_err)?;
    let ok = global.ty.mutable
        && matches!(first, Operator::I32Const { value } if value == ORIGINAL_STACK_POINTER);
    if ok {
        Ok(())
    } else {
        Err(EngineError::Module(format!(
            "global 0 is not the expected stack pointer (mutable i32 = {ORIGINAL_STACK_POINTER})"
        )))
    }
}

fn module_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Module(e.to_string())
}
