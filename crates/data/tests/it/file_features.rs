//! Features kept in their `.npy` file (`Residence::File`, what a rank of data-parallel
//! training loads) give the values of the in-memory form bit for bit — gathered rows, split
//! parts, standardization statistics and standardized rows — and errors name the file and row.

use std::path::Path;

use graphc_data::{
    load_npy_in, split_rows, BatchTargets, Dataset, Features, Residence, Standardizer, TargetKind,
};
use graphc_spec::StdKind;
use proptest::prelude::*;

use super::data_no_panic::npy_header;

/// The element types a file form reads: NumPy's type letter and size.
const DTYPES: [(char, usize); 10] = [
    ('f', 4),
    ('f', 8),
    ('i', 1),
    ('i', 2),
    ('i', 4),
    ('i', 8),
    ('u', 1),
    ('u', 2),
    ('u', 4),
    ('u', 8),
];

/// Writes a version 1.0 `.npy` file of C-order data `bytes`.
fn write_npy(path: &Path, descr: &str, shape: &[usize], bytes: &[u8]) {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut out = npy_header(descr, false, &shape);
    out.extend_from_slice(bytes);
    std::fs::write(path, out).unwrap();
}

/// The bytes of `values` as elements of `(kind, size)`, in the given byte order; floats get
/// a fraction so that they are not whole numbers.
fn encode(values: &[i64], (kind, size): (char, usize), big: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        let mut b: Vec<u8> = match (kind, size) {
            ('f', 4) => (v as f32 * 0.37).to_le_bytes().to_vec(),
            ('f', _) => (v as f64 * 1.000_000_1e-3).to_le_bytes().to_vec(),
            (_, 1) => vec![v as u8],
            (_, 2) => (v as u16).to_le_bytes().to_vec(),
            (_, 4) => (v as u32).to_le_bytes().to_vec(),
            _ => v.to_le_bytes().to_vec(),
        };
        if big {
            b.reverse();
        }
        out.extend(b);
    }
    out
}

/// Loads `x.npy` and `y.npy` of `dir` with the features where `residence` says.
fn load(dir: &Path, residence: Residence) -> Result<Dataset, String> {
    load_npy_in(
        &dir.join("x.npy"),
        &dir.join("y.npy"),
        TargetKind::ClassIndex,
        residence,
    )
    .map_err(|e| e.to_string())
}

/// Writes class targets `0, 1, 0, 1, ...` for `n` samples.
fn write_targets(dir: &Path, n: usize) {
    let y: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
    write_npy(
        &dir.join("y.npy"),
        "<i8",
        &[n],
        &encode(&y, ('i', 8), false),
    );
}

/// Every row set's gather, as bits.
pub(crate) fn gathered(d: &Dataset, rows: &[usize]) -> (Vec<u32>, BatchTargets) {
    let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
    d.gather(rows, &mut x, &mut y).unwrap();
    (x.iter().map(|v| v.to_bits()).collect(), y)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn file_rows_gather_split_and_standardize_as_the_in_memory_rows(
        dtype in 0..DTYPES.len(),
        big in any::<bool>(),
        n in 2usize..40,
        inner in prop::collection::vec(1usize..4, 0..3),
        seed in any::<u64>(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        held in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        sample_std in any::<bool>(),
    ) {
        let (kind, size) = DTYPES[dtype];
        let dir = tempfile::tempdir().unwrap();
        let width: usize = inner.iter().product();
        let mut shape = vec![n];
        shape.extend(&inner);
        // Values across the type's range (signed types negative too), from a small LCG.
        let mut state = seed | 1;
        let values: Vec<i64> = (0..n * width)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let r = (state >> 11) as i64;
                match (kind, size) {
                    ('u', 8) | ('i', 8) => r,
                    ('f', _) => r % 2_000_001 - 1_000_000,
                    ('u', s) => r % (1i64 << (8 * s)),
                    (_, s) => r % (1i64 << (8 * s - 1)) - (r & 1) * (1i64 << (8 * s - 2)),
                }
            })
            .collect();
        let order = if big { '>' } else { '<' };
        let descr = if size == 1 { format!("|{kind}1") } else { format!("{order}{kind}{size}") };
        write_npy(&dir.path().join("x.npy"), &descr, &shape, &encode(&values, (kind, size), big));
        write_targets(dir.path(), n);
        let memory = load(dir.path(), Residence::Memory).unwrap();
        let file = load(dir.path(), Residence::File).unwrap();
        prop_assert!(matches!(file.features, Features::File(_)), "{descr} stays in the file");
        prop_assert_eq!(file.len(), n);
        prop_assert_eq!(&file.feature_names, &memory.feature_names);
        prop_assert_eq!(&file.targets, &memory.targets);
        let rows: Vec<usize> = picks.iter().map(|i| i.index(n)).collect();
        prop_assert_eq!(gathered(&file, &rows), gathered(&memory, &rows));

        split_and_standardize_alike(&memory, &file, &picks, &held, sample_std)?;
    }
}

/// Splits `memory` and `file` (the same data in memory and left in its file) at the rows
/// `held` picks, fits standardization on each training part, and checks that the statistics,
/// the standardized rows `picks` picks and a rank's share of them are the same bits.
pub(crate) fn split_and_standardize_alike(
    memory: &Dataset,
    file: &Dataset,
    picks: &[prop::sample::Index],
    held: &[prop::sample::Index],
    sample_std: bool,
) -> Result<(), TestCaseError> {
    let n = memory.len();
    let width = memory.num_features();
    let mut valid_rows: Vec<usize> = held.iter().map(|i| i.index(n)).collect();
    valid_rows.sort_unstable();
    valid_rows.dedup();
    prop_assume!(valid_rows.len() < n);
    let (mut mt, mut mv) = split_rows(memory, &valid_rows);
    let (mut ft, mut fv) = split_rows(file, &valid_rows);
    let kind = if sample_std {
        StdKind::Sample
    } else {
        StdKind::Population
    };
    let ms = Standardizer::fit(&mt, kind).unwrap();
    let fs = Standardizer::fit(&ft, kind).unwrap();
    prop_assert_eq!(&fs, &ms);
    for (m, f) in [(&mut mt, &mut ft), (&mut mv, &mut fv)] {
        ms.apply(m);
        fs.apply(f);
        let rows: Vec<usize> = picks.iter().map(|i| i.index(m.len())).collect();
        prop_assert_eq!(gathered(f, &rows), gathered(m, &rows));
        // A rank's share: the targets of every row, the features of its rows only.
        let share = rows.len() / 3..rows.len();
        let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
        f.gather_share(&rows, share.clone(), &mut x, &mut y)
            .unwrap();
        let (all_x, all_y) = gathered(m, &rows);
        let bits: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(&bits[..], &all_x[share.start * width..]);
        prop_assert_eq!(y, all_y);
    }
    Ok(())
}

#[test]
fn a_non_finite_value_in_a_file_is_refused_at_load_naming_the_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let n = 300_000;
    let mut x = vec![0.5f32; n * 2];
    x[2 * 250_001 + 1] = f32::INFINITY;
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(&dir.path().join("x.npy"), "<f4", &[n, 2], &bytes);
    write_targets(dir.path(), n);
    let memory = load(dir.path(), Residence::Memory).unwrap_err();
    let file = load(dir.path(), Residence::File).unwrap_err();
    assert_eq!(file, memory, "the same message, past the first chunk");
    assert!(
        file.contains("x.npy` row 250001, column 1: inf is not a finite number"),
        "{file}"
    );
}

#[test]
fn bool_and_fortran_arrays_are_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(&dir.path().join("x.npy"), "|b1", &[2, 2], &[0, 1, 1, 0]);
    write_targets(dir.path(), 2);
    let d = load(dir.path(), Residence::File).unwrap();
    assert_eq!(d.features, vec![0.0, 1.0, 1.0, 0.0]);
    let x = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy/x_f64_fortran.npy"),
    )
    .unwrap();
    std::fs::write(dir.path().join("x.npy"), x).unwrap();
    write_targets(dir.path(), 6);
    let d = load(dir.path(), Residence::File).unwrap();
    assert!(
        d.features.in_memory().is_some(),
        "Fortran order is transposed in memory"
    );
    assert_eq!(d, load(dir.path(), Residence::Memory).unwrap());
}

#[test]
fn a_file_truncated_or_rewritten_after_loading_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let bytes: Vec<u8> = (0..40).flat_map(|i| (i as f32).to_le_bytes()).collect();
    write_npy(&path, "<f4", &[10, 4], &bytes);
    write_targets(dir.path(), 10);
    let d = load(dir.path(), Residence::File).unwrap();
    let (mut x, mut y) = (Vec::new(), BatchTargets::Floats(Vec::new()));
    d.gather(&[9, 0], &mut x, &mut y).unwrap();
    assert_eq!(&x[..4], &[36.0, 37.0, 38.0, 39.0]);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(128 + 4 * 16).unwrap();
    for rows in [&[9usize][..], &[0]] {
        let msg = d.gather(rows, &mut x, &mut y).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!(
                "`{}`: the file changed on disk during training",
                path.display()
            )),
            "{msg}"
        );
    }
    // Rewritten with other values of the same size (after the clock's tick).
    write_npy(&path, "<f4", &[10, 4], &bytes);
    let d = load(dir.path(), Residence::File).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    let other: Vec<u8> = (0..40)
        .flat_map(|i| (i as f32 + 0.5).to_le_bytes())
        .collect();
    write_npy(&path, "<f4", &[10, 4], &other);
    let msg = d.gather(&[1], &mut x, &mut y).unwrap_err().to_string();
    assert!(
        msg.contains("the file changed on disk during training"),
        "{msg}"
    );
}
