//! `RandomUniform` on the JIT: bit for bit the interpreter's values (which
//! `graphc_ir::random` checks against Philox's known answers) over random
//! shapes, seeds, streams and steps, split across threads when large; the
//! step read at run time; distinct streams, steps and seeds giving distinct
//! values; a fresh executable (a resumed run) drawing the same ones; and a
//! uniformity check that a broken generator fails; shares of rows drawn from their first
//! row (data-parallel dropout) giving the whole draw's rows.

use graphc_interp::Interp;
use graphc_ir::{Arg, Backend, BinaryOp, CompareOp, Executable, Graph, TensorType};
use graphc_jit::{compile_with, Options};
use proptest::prelude::*;

/// One draw of `shape` as the graph's only output.
fn draw_graph(seed: u64, stream: u32, shape: &[usize]) -> Graph {
    let mut g = Graph::new();
    let step = g.input("step", TensorType::i64(&[]));
    let u = g.random_uniform(step, seed, stream, shape).unwrap();
    g.add_output("u", u);
    g
}

/// The graph's first output at each step, on one backend's executable.
fn run_steps(exe: &mut dyn Executable, steps: &[i64]) -> Vec<Vec<f32>> {
    steps
        .iter()
        .map(|&t| {
            exe.run(&[Arg::I64(&[t])]).unwrap();
            exe.output(0).to_vec()
        })
        .collect()
}

fn jit(g: &Graph) -> Box<dyn Executable> {
    Box::new(compile_with(g, &Options { verify: true }).unwrap())
}

/// The first element whose bits differ, as a message.
fn bit_mismatch(jit: &[f32], interp: &[f32]) -> Option<String> {
    if jit.len() != interp.len() {
        return Some(format!("length {} vs {}", jit.len(), interp.len()));
    }
    jit.iter()
        .zip(interp)
        .position(|(a, b)| a.to_bits() != b.to_bits())
        .map(|i| format!("element {i}: jit {} vs interp {}", jit[i], interp[i]))
}

fn jit_and_interp_agree(g: &Graph, steps: &[i64]) -> Result<(), String> {
    let mut interp = Interp.compile(g).map_err(|e| e.to_string())?;
    let mut j = jit(g);
    let want = run_steps(interp.as_mut(), steps);
    let got = run_steps(j.as_mut(), steps);
    for ((t, a), b) in steps.iter().zip(&got).zip(&want) {
        if let Some(m) = bit_mismatch(a, b) {
            return Err(format!("step {t}: {m}"));
        }
    }
    Ok(())
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..12, 0..=3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every shape (a partial last block included), seed, stream and step,
    /// two steps through one executable: the step is read at run time.
    #[test]
    fn random_uniform_matches_the_interpreter_bit_for_bit(
        shape in shape(),
        seed: u64,
        stream: u32,
        steps in prop::array::uniform2(any::<i64>()),
    ) {
        let g = draw_graph(seed, stream, &shape);
        if let Err(e) = jit_and_interp_agree(&g, &steps) {
            return Err(TestCaseError::fail(format!("{shape:?} seed {seed} stream {stream}: {e}")));
        }
    }
}

#[test]
fn large_draws_split_across_threads_match_the_interpreter() {
    // Above the split threshold (2^16 elements), with a partial last block.
    for (len, step) in [(100_003, 0), (1 << 17, i64::MAX), (70_001, -1)] {
        let g = draw_graph(0x0123_4567_89ab_cdef, 3, &[len]);
        jit_and_interp_agree(&g, &[step]).unwrap_or_else(|e| panic!("{len}: {e}"));
    }
}

#[test]
fn a_dropout_mask_fused_with_its_layer_matches_the_interpreter() {
    // PyTorch's dropout: x · (u >= p) / (1 - p), with p = 0.25.
    let shape = [6, 37];
    let mut g = Graph::new();
    let step = g.input("step", TensorType::i64(&[]));
    let x = g.input("x", TensorType::f32(&shape));
    let u = g.random_uniform(step, 9, 1, &shape).unwrap();
    let p = g.fill(0.25, &shape);
    let keep = g.compare(CompareOp::Ge, u, p).unwrap();
    let scale = g.fill(1.0 / 0.75, &shape);
    let scaled = g.binary(BinaryOp::Mul, x, scale).unwrap();
    let dropped = g.binary(BinaryOp::Mul, scaled, keep).unwrap();
    g.add_output("y", dropped);
    let xs: Vec<f32> = (0..6 * 37).map(|i| i as f32 * 0.5 - 40.0).collect();
    let mut interp = Interp.compile(&g).unwrap();
    let mut j = jit(&g);
    for t in [0, 1, 1 << 40] {
        let args = [Arg::I64(&[t]), Arg::F32(&xs)];
        interp.run(&args).unwrap();
        j.run(&args).unwrap();
        assert_eq!(
            bit_mismatch(j.output(0), interp.output(0)),
            None,
            "step {t}"
        );
        let kept = j.output(0).iter().filter(|&&v| v != 0.0).count();
        // 222 elements (one zero input), each kept with probability 3/4.
        assert!((130..=200).contains(&kept), "step {t}: {kept} kept");
    }
}

/// Elements equal in two draws of 1,000 (24-bit values: about 6e-5 expected by chance).
fn equal_elements(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(p, q)| p == q).count()
}

#[test]
fn streams_steps_and_seeds_draw_different_values() {
    let n = 1000;
    let base = run_steps(
        jit(&draw_graph(5, 0, &[n])).as_mut(),
        &[7, 8, 7 + (1 << 32)],
    );
    let other_stream = run_steps(jit(&draw_graph(5, 1, &[n])).as_mut(), &[7]);
    let other_seed = run_steps(jit(&draw_graph(6, 0, &[n])).as_mut(), &[7]);
    let high_seed = run_steps(jit(&draw_graph(5 + (1 << 32), 0, &[n])).as_mut(), &[7]);
    for (what, other) in [
        ("the next step", &base[1]),
        ("step + 2^32", &base[2]),
        ("another stream", &other_stream[0]),
        ("another seed", &other_seed[0]),
        ("another high seed word", &high_seed[0]),
    ] {
        let same = equal_elements(&base[0], other);
        assert!(same <= 2, "{what}: {same} of {n} elements equal");
    }
    // Within one draw, the four words of a block and the blocks all differ too.
    let mut sorted = base[0].clone();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    assert!(sorted.len() >= n - 2, "{} distinct of {n}", sorted.len());
}

#[test]
fn a_fresh_executable_draws_the_same_values_at_the_same_step() {
    // What a resumed run relies on: the values are a function of (seed,
    // stream, step, element) only, not of what the executable ran before.
    let g = draw_graph(77, 4, &[3, 50]);
    let long_run = run_steps(jit(&g).as_mut(), &[0, 1, 2, 3]);
    let resumed = run_steps(jit(&g).as_mut(), &[2, 3]);
    assert_eq!(long_run[2..], resumed[..]);
    assert_ne!(long_run[2], long_run[3]);
}

#[test]
fn random_uniform_values_are_uniform_on_0_1() {
    // 10^5 values of a fixed seed. Their mean has standard deviation
    // sqrt(1/12/n) ≈ 9.1e-4; accept 4 of them. Chi-square over 100 equal
    // buckets has 99 degrees of freedom (mean 99, sd ≈ 14.1); accept within
    // 4 sd (±56). A relative bias r in every bucket adds about n·r² to the
    // statistic: 3 % adds 90 and fails, as do a stuck or missing range.
    let n = 100_000;
    let buckets = 100;
    let g = draw_graph(2026, 0, &[n]);
    let values = run_steps(jit(&g).as_mut(), &[12_345]).remove(0);
    assert!(values.iter().all(|&v| (0.0..1.0).contains(&v)));
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let sigma = (1.0 / 12.0 / n as f64).sqrt();
    assert!((mean - 0.5).abs() < 4.0 * sigma, "mean {mean}");
    let mut counts = vec![0usize; buckets];
    for &v in &values {
        counts[(v * buckets as f32) as usize] += 1;
    }
    let expected = (n / buckets) as f64;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    let (df, sd) = (buckets as f64 - 1.0, (2.0 * (buckets as f64 - 1.0)).sqrt());
    assert!(
        (chi2 - df).abs() < 4.0 * sd,
        "chi-square {chi2} over {df} dof"
    );
    // Consecutive pairs (the four words of a block are not independent draws
    // if the round function is wrong): 10 × 10 buckets of (v[2i], v[2i+1]).
    let mut pairs = vec![0usize; 100];
    for p in values.chunks_exact(2) {
        pairs[(p[0] * 10.0) as usize * 10 + (p[1] * 10.0) as usize] += 1;
    }
    let expected = (n / 2 / 100) as f64;
    let chi2: f64 = pairs
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    assert!(
        (chi2 - df).abs() < 4.0 * sd,
        "pair chi-square {chi2} over {df} dof"
    );
}

/// A draw of `shape` from a first row: the step operand is i64 `[t, r]`.
fn rows_graph(seed: u64, stream: u32, shape: &[usize]) -> Graph {
    let mut g = Graph::new();
    let step = g.input("step", TensorType::i64(&[2]));
    let u = g.random_uniform(step, seed, stream, shape).unwrap();
    g.add_output("u", u);
    g
}

/// Rows `first..first + rows` of `shape` (rows along axis 0) drawn from that first row at
/// step `t`, on the interpreter and the JIT; fails unless both give the same bits.
fn share_of_rows(
    (seed, stream, t): (u64, u32, i64),
    shape: &[usize],
    first: i64,
) -> Result<Vec<f32>, String> {
    let g = rows_graph(seed, stream, shape);
    let args = [Arg::I64(&[t, first])];
    let mut interp = Interp.compile(&g).map_err(|e| e.to_string())?;
    interp.run(&args).map_err(|e| e.to_string())?;
    let mut j = jit(&g);
    j.run(&args).map_err(|e| e.to_string())?;
    if let Some(m) = bit_mismatch(j.output(0), interp.output(0)) {
        return Err(format!("{shape:?} from row {first}: {m}"));
    }
    Ok(j.output(0).to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// What data-parallel dropout relies on: a batch cut into shares of rows, each drawn from
    /// its first row, gives the whole batch's draw of those rows — on both backends, bit for
    /// bit, whether a share's first element starts a Philox block or lies inside one.
    #[test]
    fn shares_of_rows_draw_the_whole_draws_rows(
        rows in 1usize..10,
        width in prop::collection::vec(1usize..7, 0..=2),
        cuts in prop::collection::vec(0usize..10, 0..3),
        seed: u64,
        stream: u32,
        t: i64,
    ) {
        let mut shape = vec![rows];
        shape.extend(&width);
        let row: usize = width.iter().product();
        let whole = draw_graph(seed, stream, &shape);
        let want = run_steps(jit(&whole).as_mut(), &[t]).remove(0);
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(rows)).collect();
        bounds.extend([0, rows]);
        bounds.sort_unstable();
        for share in bounds.windows(2).filter(|w| w[1] > w[0]) {
            shape[0] = share[1] - share[0];
            let got = share_of_rows((seed, stream, t), &shape, share[0] as i64)
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(
                bit_mismatch(&got, &want[share[0] * row..share[1] * row]),
                None,
                "{:?} rows {:?}", shape, share
            );
        }
    }
}

#[test]
fn large_shares_split_across_threads_and_far_rows_agree_with_the_interpreter() {
    // Above the split threshold, a straddling start (row 1 of 3-wide rows: word 3), and a
    // partial last block; then first rows whose elements wrap the block word and 2^64.
    share_of_rows((5, 2, 11), &[30_001, 3], 1).unwrap();
    share_of_rows((5, 2, 11), &[70_001], 6).unwrap();
    for first in [i64::MAX, -1, 1 << 40, (1 << 32) + 1] {
        share_of_rows((5, 2, 11), &[5, 3], first).unwrap_or_else(|e| panic!("{first}: {e}"));
    }
}
