//! CPU-bound work spread over the machine's cores: SCRAM key derivation costs
//! about a millisecond per tenant and dominates a run in which nothing changes.

use std::num::NonZeroUsize;

/// Maps `f` over `items` on up to one thread per core, keeping the order.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1)
        .min(items.len());
    // Thread start-up costs more than a handful of SCRAM checks.
    if threads <= 1 || items.len() < 4 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let (mine, theirs) = items.split_at(chunk);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = theirs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        // The calling thread takes the first share: one thread fewer (its
        // stack and its malloc arena) for the same number of cores.
        let mut out: Vec<R> = Vec::with_capacity(items.len());
        out.extend(mine.iter().map(f));
        for h in handles {
            out.extend(h.join().expect("worker thread panicked"));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out = super::map(&items, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        // Shorter than one share per thread, and not a multiple of it.
        for n in [4, 5, 7] {
            let items: Vec<u32> = (0..n).collect();
            assert_eq!(super::map(&items, |x| x + 1), (1..=n).collect::<Vec<_>>());
        }
        assert!(super::map(&[] as &[u32], |x| *x).is_empty());
    }
}
