//! The event scanner: one pass over the event's JSON text that collects only the leaf values
//! at paths some pattern references, and skips everything else.
//!
//! This is the hot path. It never builds a tree: a value under a key the path trie does not
//! know is skipped by a tight iterative loop (strings are jumped over with `memchr`), and a
//! referenced value becomes a [`Leaf`] that points back into the event text. Strings with
//! escapes are decoded into a side arena, so matching always sees decoded bytes.
//!
//! Arrays get an "array trail": every element of an array under a referenced path gets a
//! [`Trail`] node (array id, index, parent). Two leaves can be used together by one pattern
//! only if they do not sit in different elements of the same array (event-ruler's
//! array-consistent matching); see [`Scan::compatible`].
//!
//! Validation: the structure of the whole event is checked (brackets, commas, colons, string
//! termination and escapes, raw control characters in strings, number grammar, literals,
//! nesting depth, nothing after the top object). For speed, UTF-8 inside strings is not
//! validated: string values are compared as bytes.

use crate::operators::Scalar;
use crate::paths::{NONE, PathTrie};

/// Deepest nesting accepted in an event: serde_json's default recursion limit, so weir and
/// the host's serde_json agree on which events are too deep. Referenced parts of the event
/// are scanned recursively (one frame per level), so this also bounds stack use.
pub const MAX_EVENT_DEPTH: usize = 128;

pub(crate) const KIND_STR: u8 = 0;
pub(crate) const KIND_NUM: u8 = 1;
pub(crate) const KIND_TRUE: u8 = 2;
pub(crate) const KIND_FALSE: u8 = 3;
pub(crate) const KIND_NULL: u8 = 4;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaf {
    pub path: u32,
    pub kind: u8,
    /// The bytes are in `Scan::arena` (a decoded string), not in the event.
    pub in_arena: bool,
    pub start: u32,
    pub end: u32,
    pub trail: u32,
    /// For numbers, the comparable value (NaN if none), parsed once here.
    pub num: f64,
    /// Next leaf with the same path (NONE at the end); set by the matcher.
    pub next: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Trail {
    pub parent: u32,
    pub array: u32,
    pub depth: u32,
}

/// Reusable scan state; buffers keep their capacity between events.
#[derive(Default)]
pub(crate) struct Scan {
    pub leaves: Vec<Leaf>,
    /// trails[0] is the root (not inside any array).
    pub trails: Vec<Trail>,
    pub arena: Vec<u8>,
    keybuf: Vec<u8>,
    next_array: u32,
    scratch_num: f64,
}

#[derive(Debug)]
pub(crate) struct Invalid;

type R = Result<(), Invalid>;

impl Scan {
    /// Scans `event`; returns false if it is not a valid JSON object.
    pub(crate) fn run(&mut self, event: &[u8], trie: &PathTrie) -> bool {
        self.leaves.clear();
        self.trails.clear();
        self.trails.push(Trail {
            parent: 0,
            array: NONE,
            depth: 0,
        });
        self.arena.clear();
        self.next_array = 0;
        if event.len() >= u32::MAX as usize {
            return false;
        }
        let mut s = Cursor { b: event, i: 0 };
        s.ws();
        if s.peek() != Some(b'{') {
            return false;
        }
        if self.object(&mut s, trie, PathTrie::ROOT, 0, 1).is_err() {
            return false;
        }
        s.ws();
        s.i == event.len()
    }

    #[inline]
    pub(crate) fn has_arrays(&self) -> bool {
        self.trails.len() > 1
    }

    pub(crate) fn scalar<'a>(&'a self, leaf: &Leaf, event: &'a [u8]) -> Scalar<'a> {
        let src = if leaf.in_arena {
            &self.arena[..]
        } else {
            event
        };
        let bytes = src
            .get(leaf.start as usize..leaf.end as usize)
            .unwrap_or(&[]);
        match leaf.kind {
            KIND_STR => Scalar::Str(bytes),
            KIND_NUM => Scalar::Num(
                bytes,
                if leaf.num.is_nan() {
                    None
                } else {
                    Some(leaf.num)
                },
            ),
            KIND_TRUE => Scalar::Bool(true),
            KIND_FALSE => Scalar::Bool(false),
            _ => Scalar::Null,
        }
    }

    /// Whether two leaves may be used together: they are not in different elements of one
    /// array. Trails form a tree; climb to the point where the two branches split and
    /// compare the arrays the two branches are elements of.
    pub(crate) fn compatible(&self, a: u32, b: u32) -> bool {
        let t = &self.trails;
        let (mut x, mut y) = (a as usize, b as usize);
        if x == y {
            return true;
        }
        while t[x].depth > t[y].depth {
            x = t[x].parent as usize;
        }
        while t[y].depth > t[x].depth {
            y = t[y].parent as usize;
        }
        if x == y {
            return true; // one contains the other
        }
        while t[x].parent != t[y].parent {
            x = t[x].parent as usize;
            y = t[y].parent as usize;
        }
        t[x].array != t[y].array
    }

    fn object(
        &mut self,
        s: &mut Cursor<'_>,
        trie: &PathTrie,
        node: u32,
        trail: u32,
        depth: usize,
    ) -> R {
        if depth > MAX_EVENT_DEPTH {
            return Err(Invalid);
        }
        s.i += 1; // '{'
        s.ws();
        if s.eat(b'}') {
            return Ok(());
        }
        loop {
            s.ws();
            if s.peek() != Some(b'"') {
                return Err(Invalid);
            }
            let (ks, ke, escaped, dotted) = s.key()?;
            let child = if escaped {
                self.keybuf.clear();
                if !unescape(&s.b[ks..ke], &mut self.keybuf) {
                    return Err(Invalid);
                }
                trie.step(node, &self.keybuf, self.keybuf.contains(&b'.'))
            } else {
                trie.step(node, &s.b[ks..ke], dotted)
            };
            s.ws();
            if !s.eat(b':') {
                return Err(Invalid);
            }
            s.ws();
            match child {
                Some(c) => self.value(s, trie, c, trail, depth + 1)?,
                None => s.skip_value(depth + 1)?,
            }
            s.ws();
            match s.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(()),
                _ => return Err(Invalid),
            }
        }
    }

    fn value(
        &mut self,
        s: &mut Cursor<'_>,
        trie: &PathTrie,
        node: u32,
        trail: u32,
        depth: usize,
    ) -> R {
        let n = &trie.nodes[node as usize];
        let leaf = n.leaf;
        match s.peek() {
            Some(b'{') => {
                if n.has_children() {
                    self.object(s, trie, node, trail, depth)
                } else {
                    s.skip_value(depth)
                }
            }
            Some(b'[') => {
                if depth > MAX_EVENT_DEPTH {
                    return Err(Invalid);
                }
                if leaf == NONE && !n.has_children() {
                    return s.skip_value(depth);
                }
                s.i += 1;
                let array = self.next_array;
                self.next_array += 1;
                s.ws();
                if s.eat(b']') {
                    return Ok(());
                }
                let parent_depth = self.trails[trail as usize].depth;
                loop {
                    s.ws();
                    let t = self.trails.len() as u32;
                    self.trails.push(Trail {
                        parent: trail,
                        array,
                        depth: parent_depth + 1,
                    });
                    self.value(s, trie, node, t, depth + 1)?;
                    s.ws();
                    match s.next() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(()),
                        _ => return Err(Invalid),
                    }
                }
            }
            Some(b'"') => {
                let (st, en, escaped) = s.string()?;
                if leaf != NONE {
                    let (in_arena, st, en) = if escaped {
                        let a = self.arena.len();
                        if !unescape(&s.b[st..en], &mut self.arena) {
                            return Err(Invalid);
                        }
                        (true, a, self.arena.len())
                    } else {
                        (false, st, en)
                    };
                    self.push(leaf, KIND_STR, in_arena, st, en, trail);
                }
                Ok(())
            }
            Some(c) => {
                let st = s.i;
                let kind = s.scalar(c)?;
                if leaf != NONE {
                    if kind == KIND_NUM {
                        self.scratch_num =
                            crate::number::comparable(&s.b[st..s.i]).unwrap_or(f64::NAN);
                    }
                    self.push(leaf, kind, false, st, s.i, trail);
                }
                Ok(())
            }
            None => Err(Invalid),
        }
    }

    #[inline]
    fn push(&mut self, path: u32, kind: u8, in_arena: bool, start: usize, end: usize, trail: u32) {
        self.leaves.push(Leaf {
            path,
            kind,
            in_arena,
            start: start as u32,
            end: end as u32,
            trail,
            num: if kind == KIND_NUM {
                self.scratch_num
            } else {
                f64::NAN
            },
            next: NONE,
        });
    }
}

/// Whether `text` is one JSON value (RFC 8259: any value, with whitespace around it at most)
/// nesting at most `max_depth` arrays and objects (at most [`MAX_EVENT_DEPTH`]), as serde_json
/// would read it. UTF-8 inside strings is not checked: the caller has checked it. The same
/// iterative skip the event scanner uses, so it cannot overflow the stack.
pub fn is_json(text: &[u8], max_depth: usize) -> bool {
    let mut s = Cursor { b: text, i: 0 };
    s.ws();
    if s.skip_value(MAX_EVENT_DEPTH - max_depth.min(MAX_EVENT_DEPTH))
        .is_err()
    {
        return false;
    }
    s.ws();
    s.i == text.len()
}

/// One pass over `text` that checks it as [`is_json`] does and, when it is a JSON object, tells
/// `field(key, escaped, value)` of each of its top-level fields in order: where the key's text is
/// (between its quotes, escapes as written; `escaped` says whether it has any) and where the
/// value's JSON text is. `None` when `text` is not JSON nesting at most `max_depth` levels;
/// `Some(false)` when it is JSON but not an object (`field` is not called). For plugins that read
/// a few fields of an event and keep its text (a plugin can depend on this crate: it builds for
/// WebAssembly), at the cost of this scanner rather than a parser's.
pub fn object_fields(
    text: &[u8],
    max_depth: usize,
    mut field: impl FnMut(std::ops::Range<usize>, bool, std::ops::Range<usize>),
) -> Option<bool> {
    let depth = MAX_EVENT_DEPTH - max_depth.min(MAX_EVENT_DEPTH);
    let mut s = Cursor { b: text, i: 0 };
    s.ws();
    if s.peek() != Some(b'{') {
        return is_json(text, max_depth).then_some(false);
    }
    // The object is a level, as `skip_container` counts it.
    if depth >= MAX_EVENT_DEPTH {
        return None;
    }
    s.i += 1;
    s.ws();
    if !s.eat(b'}') {
        loop {
            s.ws();
            if s.peek() != Some(b'"') {
                return None;
            }
            let (start, end, escaped) = s.string().ok()?;
            s.ws();
            if !s.eat(b':') {
                return None;
            }
            s.ws();
            let at = s.i;
            s.skip_value(depth + 1).ok()?;
            field(start..end, escaped, at..s.i);
            s.ws();
            match s.next() {
                Some(b',') => {}
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == text.len()).then_some(true)
}

/// Whether `tail` completes a JSON object as [`is_json`] would check the whole: the text before
/// it is taken to be an object's opening brace and complete fields (`first`: no field yet), as
/// in an object that was checked already with its closing brace cut off. `tail` must then be
/// further fields, each after a comma (the first without one when `first`), the closing brace,
/// and whitespace at most; its values nest at most `max_depth` levels counting the object. So a
/// checked event with fields appended before its brace (what an enrichment plugin returns) is
/// checked by reading what was appended alone.
pub fn object_tail(tail: &[u8], mut first: bool, max_depth: usize) -> bool {
    let depth = MAX_EVENT_DEPTH - max_depth.min(MAX_EVENT_DEPTH);
    // The object itself is a level, as `skip_container` counts it.
    if depth >= MAX_EVENT_DEPTH {
        return false;
    }
    let mut s = Cursor { b: tail, i: 0 };
    loop {
        s.ws();
        match s.peek() {
            Some(b'}') => break,
            Some(b',') if !first => {
                s.i += 1;
                s.ws();
            }
            Some(b'"') if first => {}
            _ => return false,
        }
        if s.key_colon().is_err() {
            return false;
        }
        s.ws();
        if s.skip_value(depth + 1).is_err() {
            return false;
        }
        first = false;
    }
    s.i += 1;
    s.ws();
    s.i == tail.len()
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.b.get(self.i).copied();
        self.i += 1;
        c
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// At an opening quote: skips the string, returns (content start, content end, has escapes).
    /// Always inlined: it runs for every key and string value, and a call costs as much as
    /// scanning a short string.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), Invalid> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let Some(at) = find_quote_or_backslash(self.b, self.i) else {
                return Err(Invalid);
            };
            self.i = at;
            match self.b[self.i] {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Ok((start, end, escaped));
                }
                b'\\' => {}
                _ => return Err(Invalid), // raw control character
            }
            escaped = true;
            match self.b.get(self.i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                Some(b'u') => {
                    let h = self.b.get(self.i + 2..self.i + 6).ok_or(Invalid)?;
                    if !h.iter().all(|c| c.is_ascii_hexdigit()) {
                        return Err(Invalid);
                    }
                    self.i += 6;
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Like `string`, for object keys: also tells whether the key contains a '.', so that the
    /// path trie only splits dotted keys without scanning every key a second time.
    #[inline(always)]
    fn key(&mut self) -> Result<(usize, usize, bool, bool), Invalid> {
        self.i += 1;
        let start = self.i;
        match find_key_end(self.b, self.i) {
            Some((at, dotted)) if self.b[at] == b'"' => {
                self.i = at + 1;
                Ok((start, at, false, dotted))
            }
            Some(_) => {
                // An escape or a control character: take the general path (which rejects the
                // latter); dots are then looked for in the decoded key.
                self.i = start - 1;
                let (s, e, esc) = self.string()?;
                Ok((s, e, esc, false))
            }
            None => Err(Invalid),
        }
    }

    /// A number or literal starting with `c`; returns its kind.
    #[inline]
    fn scalar(&mut self, c: u8) -> Result<u8, Invalid> {
        let rest = &self.b[self.i..];
        let (kind, len) = match c {
            b't' if rest.starts_with(b"true") => (KIND_TRUE, 4),
            b'f' if rest.starts_with(b"false") => (KIND_FALSE, 5),
            b'n' if rest.starts_with(b"null") => (KIND_NULL, 4),
            b'-' | b'0'..=b'9' => (KIND_NUM, crate::number::json_number_len(rest)),
            _ => return Err(Invalid),
        };
        if len == 0 {
            return Err(Invalid);
        }
        self.i += len;
        Ok(kind)
    }

    /// Skips one value without recording anything. Iterative, with the open containers kept
    /// in a bit stack, so hostile nesting cannot overflow the call stack.
    #[inline(always)]
    fn skip_value(&mut self, depth: usize) -> R {
        // Most skipped values are scalars: no container bookkeeping for them.
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(c @ (b'-' | b'0'..=b'9' | b't' | b'f' | b'n')) => self.scalar(c).map(|_| ()),
            _ => self.skip_container(depth),
        }
    }

    fn skip_container(&mut self, depth: usize) -> R {
        // bit set = object, clear = array
        let mut stack = [0u64; MAX_EVENT_DEPTH / 64 + 1];
        let mut sp = 0usize;
        let base = depth;
        loop {
            // Expect a value.
            self.ws();
            match self.peek() {
                // The depth counts empty containers too, as serde_json's does.
                Some(b'{') => {
                    if base + sp >= MAX_EVENT_DEPTH {
                        return Err(Invalid);
                    }
                    self.i += 1;
                    self.ws();
                    if !self.eat(b'}') {
                        stack[sp / 64] |= 1 << (sp % 64);
                        sp += 1;
                        self.key_colon()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    if base + sp >= MAX_EVENT_DEPTH {
                        return Err(Invalid);
                    }
                    self.i += 1;
                    self.ws();
                    if !self.eat(b']') {
                        stack[sp / 64] &= !(1 << (sp % 64));
                        sp += 1;
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(c) => {
                    self.scalar(c)?;
                }
                None => return Err(Invalid),
            }
            // After a value: close containers or move to the next element.
            loop {
                if sp == 0 {
                    return Ok(());
                }
                let top_is_obj = stack[(sp - 1) / 64] & (1 << ((sp - 1) % 64)) != 0;
                self.ws();
                match self.next() {
                    Some(b',') => {
                        if top_is_obj {
                            self.ws();
                            self.key_colon()?;
                        }
                        break;
                    }
                    Some(b'}') if top_is_obj => sp -= 1,
                    Some(b']') if !top_is_obj => sp -= 1,
                    _ => return Err(Invalid),
                }
            }
        }
    }

    fn key_colon(&mut self) -> R {
        if self.peek() != Some(b'"') {
            return Err(Invalid);
        }
        self.string()?;
        self.ws();
        if !self.eat(b':') {
            return Err(Invalid);
        }
        Ok(())
    }
}

/// Position of the first `"`, `\\` or control character (< 0x20, invalid in JSON strings)
/// at or after `i`. Event strings are mostly short
/// (ids, enum values), where a call into a SIMD search costs more than it saves, so this
/// tests 8 bytes at a time in a register (SWAR). The lowest flagged byte is exact; borrows
/// can only produce false flags above a true one.
#[inline(always)]
fn find_quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    // x86_64 always has SSE2: test 16 bytes per step, so that the typical short string ends
    // in the first step (a predictable branch).
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        while i + 16 <= b.len() {
            // SAFETY: `i + 16 <= b.len()`, so the unaligned 16-byte load stays inside `b`;
            // SSE2 is part of the x86_64 baseline.
            let mask = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let s = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                // bytes <= 0x1f: max(v, 0x1f) == 0x1f
                let ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, s), ctl)) as u32
            };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
    }
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = LO * b'"' as u64;
    const BACKSLASH: u64 = LO * b'\\' as u64;
    while i + 8 <= b.len() {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        let w = u64::from_le_bytes(a);
        let q = w ^ QUOTE;
        let s = w ^ BACKSLASH;
        // bytes < 0x20 (the "hasless" trick; exact for the lowest flagged byte)
        let ctl = w.wrapping_sub(LO * 0x20) & !w;
        let t = (q.wrapping_sub(LO) & !q | s.wrapping_sub(LO) & !s | ctl) & HI;
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < b.len() {
        if b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Position of the first `"` or `\\` at or after `i`, and whether a `.` comes before it.
#[inline(always)]
fn find_key_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut dotted = false;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        while i + 16 <= b.len() {
            // SAFETY: as in `find_quote_or_backslash`.
            let (stop, dots) = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let s = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                let ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
                let d = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8));
                (
                    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, s), ctl)) as u32,
                    _mm_movemask_epi8(d) as u32,
                )
            };
            if stop != 0 {
                let at = stop.trailing_zeros();
                dotted |= dots & ((1u32 << at) - 1) != 0;
                return Some((i + at as usize, dotted));
            }
            dotted |= dots != 0;
            i += 16;
        }
    }
    while i < b.len() {
        match b[i] {
            b'"' | b'\\' | 0..=0x1f => return Some((i, dotted)),
            b'.' => dotted = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Decodes the 4 hex digits at `*i` (just after `\u`), and a following low surrogate if the
/// first is a high one. Lone surrogates are rejected.
pub(crate) fn decode_u_escape(b: &[u8], i: &mut usize) -> Option<char> {
    let hex4 = |at: usize| -> Option<u32> {
        let h = b.get(at..at + 4)?;
        let s = std::str::from_utf8(h).ok()?;
        if !h.iter().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let hi = hex4(*i)?;
    *i += 4;
    if (0xD800..0xDC00).contains(&hi) {
        if b.get(*i..*i + 2) != Some(b"\\u") {
            return None;
        }
        let lo = hex4(*i + 2)?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        *i += 6;
        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    } else {
        char::from_u32(hi)
    }
}

/// Decodes the escape sequence at `src[*i]` (just after its backslash) into `out`, advancing
/// `*i` past it. False if it is not a valid JSON escape. Shared by the pattern parser and the
/// event scanner, so both read strings the same way.
pub(crate) fn push_escape(src: &[u8], i: &mut usize, out: &mut Vec<u8>) -> bool {
    let Some(&e) = src.get(*i) else { return false };
    *i += 1;
    let byte = match e {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 8,
        b'f' => 12,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let Some(c) = decode_u_escape(src, i) else {
                return false;
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            return true;
        }
        _ => return false,
    };
    out.push(byte);
    true
}

/// Decodes JSON string content (between the quotes) into `out`.
pub(crate) fn unescape(src: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < src.len() {
        let Some(off) = memchr::memchr(b'\\', &src[i..]) else {
            out.extend_from_slice(&src[i..]);
            return true;
        };
        out.extend_from_slice(&src[i..i + off]);
        i += off + 1;
        if !push_escape(src, &mut i, out) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&str]) -> PathTrie {
        let mut t = PathTrie::default();
        for (i, p) in paths.iter().enumerate() {
            t.insert(p, i as u32);
        }
        t
    }

    #[test]
    fn collects_referenced_leaves_only() {
        let t = trie(&["a.b", "c"]);
        let mut s = Scan::default();
        let ev = br#"{"x": {"deep": [1, {"a": "no"}]}, "a": {"b": "v\u00e9", "z": 1}, "c": [1, [true, null]]}"#;
        assert!(s.run(ev, &t));
        assert_eq!(s.leaves.len(), 4);
        assert!(matches!(s.scalar(&s.leaves[0], ev), Scalar::Str(b) if b == "vé".as_bytes()));
        assert!(matches!(
            s.scalar(&s.leaves[1], ev),
            Scalar::Num(b"1", Some(1.0))
        ));
        assert!(matches!(s.scalar(&s.leaves[2], ev), Scalar::Bool(true)));
        assert!(s.has_arrays());
    }

    #[test]
    fn rejects_invalid() {
        let t = trie(&["a"]);
        let mut s = Scan::default();
        for ev in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\":}",
            b"{\"x\": [1,]}",
            b"{\"x\": {\"y\" 1}}",
            b"{\"x\": \"\\q\"}",
            b"{\"x\": 01}",
            b"{} x",
            b"{\"x\": tru}",
            b"{\"x\": [}",
            b"{\"x\": {]}",
            b"{\"a\": \"\\ud800\"}",
            b"{\"x\": \"a\nb\"}",
            b"{\"a\": \"a\tb\"}",
            b"{\"a\nb\": 1}",
            b"{\"a\": \"0123456789abcdef\x01\"}",
        ] {
            assert!(!s.run(ev, &t), "{}", String::from_utf8_lossy(ev));
        }
        assert!(s.run(b" {\"x\": [{}, [], \"\\\"\", -1.5e3, {\"y\": null}]} ", &t));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let t = trie(&["a"]);
        let mut s = Scan::default();
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(!s.run(deep.as_bytes(), &t));
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(!s.run(deep.as_bytes(), &t));
        let ok = format!("{{\"a\": {}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(s.run(ok.as_bytes(), &t));
        let ok = format!("{{\"x\": {}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(s.run(ok.as_bytes(), &t));
    }

    /// `is_json` against serde_json on edge cases and on many mutations of JSON documents: the
    /// host takes an event as JSON on `is_json`'s word, and every other reader is serde_json.
    #[test]
    fn is_json_agrees_with_serde_json() {
        let serde_ok = |t: &str| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok();
        let seeds = [
            r#"{"id":"a-1","detail":{"amount":12.5e-3,"tags":["x","y\"z",null,true,false],"n":-0}}"#,
            r#"[1, -2.0, 3E+7, "\u00e9\n\t\/\b\f\r", {}, [], [[{"k": {}}]]]"#,
            r#"  "just a string with \\ and \" and é"  "#,
            "0",
            " true ",
            r#"{"a":[{"b":[{"c":1}]}],"d":"\ud83d\ude00"}"#,
        ];
        let edge = [
            "",
            " ",
            "{",
            "}",
            "[",
            "]",
            "[,]",
            "[1,]",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{1:2}"#,
            "01",
            "-",
            "-0",
            "1.",
            ".5",
            "1e",
            "1e+",
            "1E5",
            "+1",
            "tru",
            "truex",
            "nul",
            "nulll",
            "[true false]",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            "\"a\u{1}b\"",
            "\"a\tb\"",
            "\"tab\\tok\"",
            "1 2",
            "[] []",
            "{}x",
            "\u{feff}{}",
            "[1]\n",
            "\t{}\r\n",
            r#"{"a":1 "b":2}"#,
            r#"["a" "b"]"#,
        ];
        for t in seeds.iter().chain(edge.iter()) {
            assert_eq!(is_json(t.as_bytes(), 100), serde_ok(t), "{t:?}");
        }
        let alphabet = b"{}[]:,\"\\ \t\nu0123456789.eE+-aflnrstux\x01";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut checked = 0;
        for round in 0..60_000 {
            let mut b = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(b.len() + 1);
                let c = alphabet[next(alphabet.len())];
                match next(4) {
                    0 if at < b.len() => b[at] = c,
                    1 => b.insert(at, c),
                    2 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.truncate(at),
                }
            }
            let Ok(t) = std::str::from_utf8(&b) else {
                continue;
            };
            assert_eq!(is_json(&b, 100), serde_ok(t), "{t:?}");
            checked += 1;
        }
        assert!(checked > 50_000, "{checked}");
    }

    #[test]
    fn object_fields_agrees_with_serde_json() {
        let texts = [
            r#"{"a":1,"b":"x","c":{"d":[1,2,{"e":null}]},"f":true}"#,
            r#" { "a" : 1 , "b\u0041" : "y\"z" } "#,
            "{}",
            "{ }",
            r#"{"a":1,"a":2}"#,
            "[1,2]",
            r#""text""#,
            "12.5e3",
            "null",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{"a":01}"#,
            r#"{a:1}"#,
            r#"{"a":[1,]}"#,
            "",
            "{",
        ];
        for text in texts {
            let mut seen = Vec::new();
            let got = object_fields(text.as_bytes(), 100, |k, escaped, v| {
                seen.push((text[k].to_owned(), escaped, text[v].to_owned()));
            });
            let want = serde_json::from_str::<serde_json::Value>(text).ok();
            match (&got, &want) {
                (None, None) => {}
                (Some(false), Some(v)) => assert!(!v.is_object(), "{text}"),
                (Some(true), Some(serde_json::Value::Object(_))) => {
                    // Every field in order, each value the text serde_json reads there.
                    let raw: Vec<(String, Box<serde_json::value::RawValue>)> = {
                        let mut de = serde_json::Deserializer::from_str(text);
                        let mut out = Vec::new();
                        use serde::de::{Deserializer as _, MapAccess, Visitor};
                        struct Fields<'a>(&'a mut Vec<(String, Box<serde_json::value::RawValue>)>);
                        impl<'de> Visitor<'de> for Fields<'_> {
                            type Value = ();
                            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                                f.write_str("an object")
                            }
                            fn visit_map<A: MapAccess<'de>>(
                                self,
                                mut m: A,
                            ) -> Result<(), A::Error> {
                                while let Some((k, v)) = m.next_entry()? {
                                    self.0.push((k, v));
                                }
                                Ok(())
                            }
                        }
                        (&mut de).deserialize_map(Fields(&mut out)).unwrap();
                        out
                    };
                    assert_eq!(seen.len(), raw.len(), "{text}");
                    for ((key, escaped, value), (k, v)) in seen.iter().zip(&raw) {
                        let quoted = format!("\"{key}\"");
                        assert_eq!(
                            &serde_json::from_str::<String>(&quoted).unwrap(),
                            k,
                            "{text}"
                        );
                        assert_eq!(*escaped, key.contains('\\'), "{text}");
                        assert_eq!(value, v.get(), "{text}");
                    }
                }
                _ => panic!("{text}: object_fields {got:?}, serde_json {want:?}"),
            }
        }
        // The depth bound counts the object itself, as is_json's does.
        let deep = format!("{}{}", "{\"a\":".repeat(3), "1}}}");
        assert_eq!(object_fields(deep.as_bytes(), 3, |_, _, _| {}), Some(true));
        assert_eq!(object_fields(deep.as_bytes(), 2, |_, _, _| {}), None);
        assert!(is_json(deep.as_bytes(), 3) && !is_json(deep.as_bytes(), 2));
    }

    #[test]
    fn object_tail_agrees_with_is_json_on_the_whole() {
        // Checked objects, cut before their closing brace, and what may follow the cut.
        let objects = [
            "{}",
            "{ }",
            r#"{"a":1}"#,
            r#"{"a":{"b":[1,{"c":null}]},"d":"x\"}"}"#,
            r#"{"a":1 }"#,
        ];
        let tails = [
            "}",
            " } ",
            r#","t":"gold"}"#,
            r#" , "t" : [1, {"u": true}] }"#,
            r#""t":"gold"}"#,
            r#","t":"gold","r":1.5e3}"#,
            r#","t":"gold",}"#,
            r#","t":}"#,
            r#","t""gold"}"#,
            r#","t":"gold""#,
            r#","t":"gold"}}"#,
            r#","t":"gold"} x"#,
            r#",t:1}"#,
            r#","t":[1,2}"#,
            r#","t":"open}"#,
            ",}",
            "",
            r#","t":1,"#,
        ];
        for object in objects {
            let cut = &object[..object.len() - 1];
            let first = cut.trim_end().ends_with('{');
            for tail in tails {
                let whole = format!("{cut}{tail}");
                assert_eq!(
                    object_tail(tail.as_bytes(), first, 64),
                    is_json(whole.as_bytes(), 64),
                    "{whole:?}"
                );
            }
        }
        // The depth counts the object the tail completes.
        for depth in [1usize, 2, 3, 4] {
            let tail = format!(r#","t":{}1{}}}"#, "[".repeat(2), "]".repeat(2));
            let whole = format!(r#"{{"a":1{tail}"#);
            assert_eq!(
                object_tail(tail.as_bytes(), false, depth),
                is_json(whole.as_bytes(), depth),
                "depth {depth}: {whole}"
            );
        }
        assert!(!object_tail(b"}", true, 0));
    }

    #[test]
    fn is_json_bounds_the_depth_empty_containers_included() {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let nest = |n: usize, inner: &str| {
                let head = open.repeat(n);
                let tail = close.repeat(n);
                format!("{head}{inner}{tail}")
            };
            assert!(is_json(nest(100, "1").as_bytes(), 100));
            assert!(!is_json(nest(101, "1").as_bytes(), 100));
            assert!(is_json(nest(99, "[]").as_bytes(), 100));
            assert!(!is_json(nest(100, "[]").as_bytes(), 100));
            assert!(!is_json(nest(100_000, "1").as_bytes(), 100));
        }
    }

    #[test]
    fn dotted_event_keys() {
        let long = "aaaaaaaaaaaaaaaaaaaaaaaa";
        let t = trie(&["a.b", &format!("{long}.{long}.c")]);
        let mut s = Scan::default();
        for ev in [
            r#"{"a.b": 1}"#.to_string(),
            r#"{"a": {"b": 1}}"#.to_string(),
            r#"{"a.b": 1}"#.to_string(),
            format!(r#"{{"{long}.{long}.c": 1}}"#),
            format!(r#"{{"{long}": {{"{long}.c": 1}}}}"#),
        ] {
            assert!(s.run(ev.as_bytes(), &t), "{ev}");
            assert_eq!(s.leaves.len(), 1, "{ev}");
        }
    }

    #[test]
    fn quote_finder() {
        let s = b"abcdefghijklmnop\"q";
        for start in 0..s.len() {
            assert_eq!(
                find_quote_or_backslash(s, start),
                if start <= 16 { Some(16) } else { None }
            );
        }
        assert_eq!(
            find_quote_or_backslash(b"\x01\x01\x01\\aaaaaaaa", 0),
            Some(0)
        );
        assert_eq!(find_quote_or_backslash(b"  \x7f\\aaaaaaaa", 0), Some(3));
        assert_eq!(find_quote_or_backslash(b"\xff\x22", 0), Some(1));
        assert_eq!(
            find_quote_or_backslash(b"abcdefghij\x1fabcdefgh\"", 0),
            Some(10)
        );
        assert_eq!(
            find_quote_or_backslash(b"abcdefghijklmnopqrstu\x00vwxyz\"", 0),
            Some(21)
        );
        assert_eq!(find_quote_or_backslash(b"abc\x7f\xe9\x80\"", 0), Some(6));
        assert_eq!(find_quote_or_backslash(b"abc", 0), None);
    }

    #[test]
    fn array_consistency() {
        let t = trie(&["a.b", "a.c"]);
        let mut s = Scan::default();
        assert!(s.run(br#"{"a": [{"b": 1, "c": 2}, {"b": 3, "c": 4}]}"#, &t));
        let l = &s.leaves;
        assert!(s.compatible(l[0].trail, l[1].trail));
        assert!(!s.compatible(l[0].trail, l[3].trail));
    }
}
