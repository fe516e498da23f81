//! `host.metadata(input)`: an event's metadata, built only when a plugin asks for it.
//!
//! The metadata (source, time, and each `meta` field: five for a Kafka record) used to cross
//! in every `event` record, as a list of string pairs. Each string or list crossing the boundary
//! is a call into the guest's allocator and a copy, so a plugin that never read them paid for
//! them all: measured with `cargo bench -p weir --bench plugins`, two pairs cost the Rust `redact`
//! plugin 12-15% of its throughput. Asked for by index, they cost nothing to the plugins that do
//! not need them, and the same to those that do.
//!
//! The host function runs inside `process`, on the calling thread, while the caller still borrows
//! the batch's envelopes; but a Store's data must be `'static` and cannot hold that borrow. So
//! the Store holds a pointer to the caller's lookup ([`Lent`]), set by [`lend`] for exactly the
//! duration of one call and cleared when it returns or unwinds.

use std::ptr::NonNull;
use wasmtime::Store;

/// Event `i`'s metadata pairs, for `i` below the batch's length.
pub(crate) type Lookup<'a> = dyn Fn(usize) -> Vec<(String, String)> + 'a;

/// In each Store: the lookup of the `process` call under way, if any, and the batch's length.
#[derive(Default)]
pub struct Lent(Option<(NonNull<Lookup<'static>>, usize)>);

// SAFETY: the pointer is only set while `lend` runs a call on the current thread, and cleared
// before `lend` returns; a Store that moves between threads (between calls) holds None.
unsafe impl Send for Lent {}

impl Lent {
    /// The metadata of event `input` of the call under way; empty outside a call or past the
    /// batch (the index comes from the plugin: any u32).
    pub fn get(&self, input: u32) -> Vec<(String, String)> {
        match self.0 {
            // SAFETY: set only inside `lend`, whose `lookup` borrow outlives the call.
            Some((lookup, len)) if (input as usize) < len => {
                let lookup = unsafe { lookup.as_ref() };
                lookup(input as usize)
            }
            _ => Vec::new(),
        }
    }
}

/// A Store's data that holds a [`Lent`] (the plugin Store's, store.rs).
pub(crate) trait Lends: 'static {
    fn lent(&mut self) -> &mut Lent;
}

/// Runs `call` with `lookup` (for a batch of `len` events) lent to the store's `metadata`
/// import; taken back when `call` returns or unwinds.
pub(crate) fn lend<T: Lends, R>(
    store: &mut Store<T>,
    lookup: &Lookup<'_>,
    len: usize,
    call: impl FnOnce(&mut Store<T>) -> R,
) -> R {
    struct TakeBack<'s, T: Lends>(&'s mut Store<T>);
    impl<T: Lends> Drop for TakeBack<'_, T> {
        fn drop(&mut self) {
            self.0.data_mut().lent().0 = None;
        }
    }
    // SAFETY: only the trait object's lifetime is erased; `TakeBack` removes the pointer before
    // this function returns, so it is never used after `lookup`'s borrow ends.
    let erased: &Lookup<'static> = unsafe { std::mem::transmute::<&Lookup<'_>, _>(lookup) };
    store.data_mut().lent().0 = Some((NonNull::from(erased), len));
    let guard = TakeBack(store);
    call(&mut *guard.0)
}
