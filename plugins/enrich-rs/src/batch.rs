//! The packed batches of `weir:plugin@0.3.0`: the events cut out of the lists they cross in, and
//! the outputs packed into the lists they go back in (wit/v0.3.0/plugin.wit says how).

use crate::weir::plugin0_3_0::types::{Events, Outputs};

/// Each event's payload, in order. weir packs the batch itself; an end that does not fit (which
/// it never sends) reads as an empty payload, which fails as not JSON, rather than trap.
pub(crate) fn payloads(events: &Events) -> impl Iterator<Item = &[u8]> {
    let mut start = 0usize;
    events.payload_ends.iter().map(move |&end| {
        let end = end as usize;
        let payload = events.payloads.get(start..end).unwrap_or_default();
        start = end;
        payload
    })
}

/// The outputs of a batch, packed as they are made. Every output here keeps its input's key.
pub(crate) struct Packer(Outputs);

impl Packer {
    /// Room for `outputs` outputs of `bytes` bytes in all.
    pub(crate) fn with_capacity(outputs: usize, bytes: usize) -> Packer {
        Packer(Outputs {
            inputs: Vec::with_capacity(outputs),
            payloads: Vec::with_capacity(bytes),
            payload_ends: Vec::with_capacity(outputs),
            keys: String::new(),
            key_ends: Vec::with_capacity(outputs),
            has_key: Vec::with_capacity(outputs),
        })
    }

    /// An output of input `input`, whose payload `write` appends to the buffer it is given.
    pub(crate) fn push(&mut self, input: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let o = &mut self.0;
        write(&mut o.payloads);
        o.inputs.push(input);
        o.payload_ends.push(o.payloads.len() as u32);
        o.key_ends.push(o.keys.len() as u32);
        o.has_key.push(false);
    }

    pub(crate) fn into_outputs(self) -> Outputs {
        self.0
    }
}
