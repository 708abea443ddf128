//! The step's memory: one 64-byte-aligned f32 arena that holds every tensor
//! of a step (parameters, state, inputs, constants, intermediates, outputs).
//!
//! The arena is an anonymous memory mapping: the kernel hands it out zeroed
//! and page by page on first touch. Arenas of 2 MiB and more start on a 2 MiB
//! boundary and ask for transparent huge pages (`MADV_HUGEPAGE`): mlp_l's
//! 89 MB arena took ~22,000 page faults of 4 KiB in its first step (first
//! touch of 90 MB measured 32 ms in 4 KiB pages, 4 ms in huge pages; mlp_l's
//! first step went from 90–112 ms to 34–66 ms), and its weights no longer
//! span thousands of TLB entries.

use std::ptr::NonNull;

use graphc_ir::IrError;

/// Floats per 64-byte line; every slot starts on a line and spans whole lines.
pub(crate) const LINE: usize = 16;

/// A transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

/// A zeroed f32 buffer whose first float sits on a 64-byte boundary and that
/// never moves, so pointers into it stay valid for the executable's life.
pub(crate) struct Arena {
    /// The mapping as returned by `mmap`.
    map: NonNull<libc::c_void>,
    /// Bytes mapped.
    map_len: usize,
    /// First float (aligned inside the mapping).
    start: NonNull<f32>,
    /// Floats usable from `start`.
    len: usize,
}

// SAFETY: the arena owns its mapping exclusively, like a `Vec<f32>`.
unsafe impl Send for Arena {}

impl Arena {
    /// An arena of at least `len` floats, all zero, or an error when the
    /// size does not fit in memory or the system refuses the memory.
    pub(crate) fn new(len: usize) -> Result<Arena, IrError> {
        let refused = || {
            IrError::Compile(format!(
                "cannot reserve {len} floats for the step's memory: {}",
                std::io::Error::last_os_error()
            ))
        };
        let too_large =
            || IrError::Compile(format!("the step's memory ({len} floats) is too large"));
        let floats = len
            .div_ceil(LINE)
            .max(1)
            .checked_mul(LINE)
            .ok_or_else(too_large)?;
        let bytes = floats
            .checked_mul(std::mem::size_of::<f32>())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(too_large)?;
        let huge = bytes >= HUGE_PAGE;
        let map_len = if huge {
            bytes.checked_add(HUGE_PAGE).ok_or_else(too_large)?
        } else {
            bytes
        };
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(refused());
        }
        let map = NonNull::new(map).ok_or_else(refused)?;
        let skip = if huge {
            (HUGE_PAGE - map.as_ptr() as usize % HUGE_PAGE) % HUGE_PAGE
        } else {
            0
        };
        // The mapping covers the aligned start plus every float handed out
        // (not a debug check: a wrong size here is memory unsafety later).
        assert!(
            skip.checked_add(bytes).is_some_and(|end| end <= map_len),
            "the arena's mapping of {map_len} bytes does not cover {bytes} bytes after {skip}"
        );
        // SAFETY: `skip + bytes <= map_len` (asserted above), so the start lies
        // inside the mapping; it is 2 MiB-aligned when `huge` and page-aligned
        // (hence 64-byte-aligned) otherwise.
        let start = unsafe { map.as_ptr().cast::<u8>().add(skip) };
        if huge {
            // Advice only: without transparent huge pages the arena works the same.
            // SAFETY: the range lies inside the mapping and is 2 MiB-aligned.
            unsafe { libc::madvise(start.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        Ok(Arena {
            map,
            map_len,
            start: NonNull::new(start.cast::<f32>()).ok_or_else(refused)?,
            len: floats,
        })
    }

    /// The whole arena as floats.
    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `len` zero-initialised floats from `start` lie inside the mapping,
        // which lives as long as `self`; `&self` excludes writers.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }

    /// The whole arena as mutable floats.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
    }

    /// Base pointer handed to generated code and the GEMM (64-byte aligned).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.start.as_ptr()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; no pointer into it outlives
        // the executable that owns the arena.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_base_is_64_byte_aligned_and_zero() {
        for len in [1, 15, 16, 1000, 1 << 20] {
            let mut a = Arena::new(len).unwrap();
            assert_eq!(a.as_mut_ptr() as usize % 64, 0);
            assert!(a.as_slice().len() >= len);
            assert!(a.as_slice().iter().all(|&x| x == 0.0));
            a.as_mut_slice().fill(1.0);
            assert!(a.as_slice().iter().all(|&x| x == 1.0));
        }
    }

    #[test]
    fn an_arena_whose_bytes_overflow_is_refused() {
        for len in [usize::MAX, usize::MAX / 4 + 1, 7686143364045559088] {
            let e = Arena::new(len).err().expect("refused");
            assert!(e.to_string().contains("too large"), "{e}");
        }
    }

    #[test]
    fn large_arenas_start_on_a_huge_page() {
        let mut a = Arena::new(3 << 20).unwrap();
        assert_eq!(a.as_mut_ptr() as usize % HUGE_PAGE, 0);
        assert!(a.as_slice().len() >= 3 << 20);
    }
}
