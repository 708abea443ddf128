//! Buffer (liveness) planning: place the buffers written and read by a
//! sequence of steps in one arena, reusing the space of a buffer after its
//! last reader with a line-rounded best-fit allocator.

/// `len` rounded up to whole lines of `line` elements, at least one line.
pub fn round_up(len: usize, line: usize) -> usize {
    len.div_ceil(line).max(1) * line
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

    /// The start of a free range of `len` elements (rounded up to lines).
    pub fn alloc(&mut self, len: usize) -> usize {
        let len = round_up(len, self.line);
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
                start
            }
            None => {
                let start = self.top;
                self.top += len;
                start
            }
        }
    }

    /// Frees the range `alloc(len)` returned at `start`.
    pub fn release(&mut self, start: usize, len: usize) {
        let len = round_up(len, self.line);
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
    /// The last step that reads it, after `def`; `None` if it is read after the last step.
    pub last: Option<usize>,
}

/// Places `buffers` (sorted by `def`, each `last` in `def + 1..steps`) with
/// `allocator`: when each step runs, the buffers it writes are allocated in
/// order, then those it read last are released in order. Returns the offset
/// of each buffer; one whose `last` is out of range is never released.
pub fn assign_offsets(allocator: &mut Allocator, steps: usize, buffers: &[Lifetime]) -> Vec<usize> {
    let mut offsets = vec![0; buffers.len()];
    let mut release_at: Vec<Vec<usize>> = vec![Vec::new(); steps];
    let mut next = 0;
    for t in 0..steps {
        while let Some(b) = buffers.get(next).filter(|b| b.def == t) {
            offsets[next] = allocator.alloc(b.len);
            if let Some(at) = b.last.and_then(|last| release_at.get_mut(last)) {
                at.push(next);
            }
            next += 1;
        }
        for &i in &release_at[t] {
            allocator.release(offsets[i], buffers[i].len);
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_to_whole_lines() {
        assert_eq!(round_up(0, 16), 16);
        assert_eq!(round_up(16, 16), 16);
        assert_eq!(round_up(17, 16), 32);
    }

    #[test]
    fn a_released_range_is_reused_best_fit() {
        let mut a = Allocator::new(16);
        let big = a.alloc(100);
        let small = a.alloc(10);
        let after = a.alloc(1);
        assert_eq!((big, small, after), (0, 112, 128));
        a.release(big, 100);
        a.release(small, 10);
        // The freed ranges merged into one of 128; 20 elements take its start.
        assert_eq!(a.alloc(20), 0);
        assert_eq!(a.alloc(96), 32);
        assert_eq!(a.top(), 144);
        assert_eq!(a.alloc(1), 144);
    }

    #[test]
    fn the_smallest_fitting_hole_is_chosen() {
        let mut a = Allocator::new(16);
        let [x, _, y, _] = [64, 1, 32, 1].map(|len| a.alloc(len));
        a.release(x, 64);
        a.release(y, 32);
        assert_eq!(a.alloc(20), y);
        assert_eq!(a.alloc(40), x);
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
        let offsets = assign_offsets(&mut a, 4, &buffers);
        // The first buffer is still read while the second is written; the third
        // reuses the first's range; the fourth needs new space, as step 2 still
        // reads the second.
        assert_eq!(offsets, [0, 16, 0, 32]);
        assert_eq!(a.top(), 48);
    }
}
