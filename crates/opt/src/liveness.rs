//! Buffer (liveness) planning: place the buffers written and read by a
//! sequence of steps in one arena, reusing the space of a buffer after its
//! last reader with a line-rounded best-fit allocator. Every size and offset
//! is computed with checked arithmetic: a layout that does not fit in `usize`
//! is `None`, never a wrapped offset.

/// `len` rounded up to whole lines of `line` elements (at least one line), or
/// `None` when that overflows `usize`.
pub fn round_up(len: usize, line: usize) -> Option<usize> {
    len.div_ceil(line).max(1).checked_mul(line)
}

/// Best-fit allocation of line-rounded ranges, for liveness-planned slots.
#[derive(Debug)]
pub struct Allocator {
    line: usize,
    free: Vec<(usize, usize)>,
    top: usize,
}

impl Allocator {
    /// An empty allocator whose ranges are whole lines of `line` elements (a line of 0 counts as 1).
    pub fn new(line: usize) -> Allocator {
        Allocator {
            line: line.max(1),
            free: Vec::new(),
            top: 0,
        }
    }

    /// The start of a free range of `len` elements (rounded up to lines), or
    /// `None` when the range would end beyond `usize::MAX`.
    pub fn alloc(&mut self, len: usize) -> Option<usize> {
        let len = round_up(len, self.line)?;
        let best = (0..self.free.len())
            .filter(|&i| self.free[i].1 >= len)
            .min_by_key(|&i| self.free[i].1);
        match best {
            Some(i) => {
                let (start, size) = self.free[i];
                if size == len {
                    self.free.remove(i);
                } else {
                    self.free[i] = (start + len, size - len);
                }
                Some(start)
            }
            None => {
                let start = self.top;
                self.top = self.top.checked_add(len)?;
                Some(start)
            }
        }
    }

    /// Frees the range `alloc(len)` returned at `start` (a `len` that `alloc`
    /// refused was never allocated, and is ignored).
    pub fn release(&mut self, start: usize, len: usize) {
        let Some(len) = round_up(len, self.line) else {
            return;
        };
        let i = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(i, (start, len));
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }

    /// The elements needed so far: the end of the highest range ever allocated.
    pub fn top(&self) -> usize {
        self.top
    }
}

/// A buffer written by step `def` and last read by step `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Elements.
    pub len: usize,
    /// The step that writes it.
    pub def: usize,
    /// The last step that reads it, after `def`; `None` if it is read after the
    /// last step. `last == def` is a step's scratch: live during that step only,
    /// overlapping nothing the step reads or writes.
    pub last: Option<usize>,
}

/// Places `buffers` (sorted by `def`, each `last` in `def..steps`) with
/// `allocator`: when each step runs, the buffers it writes are allocated in
/// order, then those it read last are released in order. Returns the offset
/// of each buffer (one whose `last` is out of range is never released), or
/// `None` when the layout does not fit in `usize`.
pub fn assign_offsets(
    allocator: &mut Allocator,
    steps: usize,
    buffers: &[Lifetime],
) -> Option<Vec<usize>> {
    let mut offsets = vec![0; buffers.len()];
    let mut release_at: Vec<Vec<usize>> = vec![Vec::new(); steps];
    let mut next = 0;
    for t in 0..steps {
        while let Some(b) = buffers.get(next).filter(|b| b.def == t) {
            offsets[next] = allocator.alloc(b.len)?;
            if let Some(at) = b.last.and_then(|last| release_at.get_mut(last)) {
                at.push(next);
            }
            next += 1;
        }
        for &i in &release_at[t] {
            allocator.release(offsets[i], buffers[i].len);
        }
    }
    Some(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_to_whole_lines() {
        assert_eq!(round_up(0, 16), Some(16));
        assert_eq!(round_up(16, 16), Some(16));
        assert_eq!(round_up(17, 16), Some(32));
        assert_eq!(round_up(usize::MAX - 3, 16), None);
    }

    #[test]
    fn a_released_range_is_reused_best_fit() {
        let mut a = Allocator::new(16);
        let big = a.alloc(100).unwrap();
        let small = a.alloc(10).unwrap();
        let after = a.alloc(1).unwrap();
        assert_eq!((big, small, after), (0, 112, 128));
        a.release(big, 100);
        a.release(small, 10);
        // The freed ranges merged into one of 128; 20 elements take its start.
        assert_eq!(a.alloc(20), Some(0));
        assert_eq!(a.alloc(96), Some(32));
        assert_eq!(a.top(), 144);
        assert_eq!(a.alloc(1), Some(144));
    }

    #[test]
    fn the_smallest_fitting_hole_is_chosen() {
        let mut a = Allocator::new(16);
        let [x, _, y, _] = [64, 1, 32, 1].map(|len| a.alloc(len).unwrap());
        a.release(x, 64);
        a.release(y, 32);
        assert_eq!(a.alloc(20), Some(y));
        assert_eq!(a.alloc(40), Some(x));
    }

    #[test]
    fn buffers_share_space_once_dead() {
        let buffers = [
            Lifetime {
                len: 16,
                def: 0,
                last: Some(1),
            },
            Lifetime {
                len: 16,
                def: 1,
                last: Some(2),
            },
            Lifetime {
                len: 16,
                def: 2,
                last: None,
            },
            Lifetime {
                len: 16,
                def: 2,
                last: Some(3),
            },
        ];
        let mut a = Allocator::new(16);
        let offsets = assign_offsets(&mut a, 4, &buffers).unwrap();
        // The first buffer is still read while the second is written; the third
        // reuses the first's range; the fourth needs new space, as step 2 still
        // reads the second.
        assert_eq!(offsets, [0, 16, 0, 32]);
        assert_eq!(a.top(), 48);
    }

    #[test]
    fn a_layout_past_usize_max_is_refused_not_wrapped() {
        let mut a = Allocator::new(16);
        assert!(a.alloc(usize::MAX / 2).is_some());
        assert_eq!(a.alloc(usize::MAX / 2), None);
        let buffers = [usize::MAX / 2, usize::MAX / 2].map(|len| Lifetime {
            len,
            def: 0,
            last: None,
        });
        assert_eq!(assign_offsets(&mut Allocator::new(16), 1, &buffers), None);
    }
}
