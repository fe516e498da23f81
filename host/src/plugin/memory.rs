//! The cap on an instance's linear memory (`memory_mb`).

use wasmtime::ResourceLimiter;

/// Caps the total linear memory of an instance (all its memories together: JS and Python
/// runtimes may have more than one). A refused `memory.grow` returns -1 to the guest, which
/// usually aborts; `exceeded` lets the host say "exceeded 64 MiB" instead of "unreachable".
pub struct MemoryLimit {
    pub max_bytes: usize,
    total: usize,
    pub exceeded: bool,
}

impl MemoryLimit {
    pub fn new(memory_mb: u64) -> Self {
        MemoryLimit {
            max_bytes: (memory_mb as usize).saturating_mul(1 << 20),
            total: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(desired.saturating_sub(current));
        if total > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real runtime's needs.
        Ok(desired <= 1_000_000)
    }
}
