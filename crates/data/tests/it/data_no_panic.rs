//! Arbitrary bytes as CSV, `.npy`, `.npz` and IDX files (gzipped or not) give an error or a
//! data set, never a panic; so do headers that are valid but describe arbitrary shapes.

use graphc_data::{load_csv, load_idx, load_npy, load_npz, DataError, Dataset, TargetKind};
use proptest::prelude::*;

use crate::support::{gzip, write};

fn kinds() -> impl Strategy<Value = TargetKind> {
    prop_oneof![Just(TargetKind::ClassIndex), Just(TargetKind::Float)]
}

/// A loaded data set must be consistent: as many feature rows as targets.
fn check(result: Result<Dataset, DataError>) {
    match result {
        Ok(d) => {
            assert_eq!(
                d.features.in_memory().unwrap().len(),
                d.len() * d.num_features()
            );
            assert!(!d.is_empty(), "an empty data set is an error");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
}

/// A `.npy` v1 header for `descr`/`shape` (possibly lying about the data that follows).
pub(crate) fn npy_header(descr: &str, fortran: bool, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let py_bool = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {py_bool}, 'shape': {shape}, }}")
        .into_bytes();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&h);
    bytes
}

const DESCRS: &[&str] = &[
    "<f4", ">f8", "|u1", "<i8", "|b1", "<u8", "<f2", "<U3", "|O", "<c8", "x", "<i3",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_csv_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), kind in kinds()) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.csv", &bytes);
        check(load_csv(&p, &["y".into()], None, kind));
        check(load_csv(&p, &["a".into(), "b".into()], Some(&["c".into()]), kind));
    }

    #[test]
    fn arbitrary_text_rows_as_csv_never_panic(
        rows in proptest::collection::vec("[0-9a-z,\" .\\-]{0,12}", 0..8),
        kind in kinds(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("a,y\n{}", rows.join("\n"));
        let p = write(dir.path(), "d.csv", text.as_bytes());
        check(load_csv(&p, &["y".into()], None, kind));
    }

    #[test]
    fn arbitrary_bytes_as_npy_npz_and_idx_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        kind in kinds(),
        gzipped in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let data = if gzipped { gzip(&bytes) } else { bytes.clone() };
        let a = write(dir.path(), "a", &data);
        let ok_labels = write(dir.path(), "labels", &[0, 0, 8, 1, 0, 0, 0, 1, 3]);
        check(load_idx(&a, &ok_labels, kind));
        check(load_idx(&ok_labels, &a, kind));
        check(load_npy(&a, &a, kind));
        check(load_npz(&a, "x", "y", kind));
    }

    #[test]
    fn npy_headers_with_arbitrary_shapes_and_dtypes_never_panic(
        descr in proptest::sample::select(DESCRS),
        fortran in any::<bool>(),
        shape in proptest::collection::vec(prop_oneof![0u64..5, Just(u64::MAX / 3), Just(1u64 << 40)], 0..4),
        data in proptest::collection::vec(any::<u8>(), 0..200),
        kind in kinds(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = npy_header(descr, fortran, &shape);
        bytes.extend_from_slice(&data);
        let x = write(dir.path(), "x.npy", &bytes);
        let y = write(dir.path(), "y.npy", &bytes);
        check(load_npy(&x, &y, kind));
    }

    #[test]
    fn idx_headers_with_arbitrary_dimensions_never_panic(
        code in prop_oneof![Just(8u8), Just(9), Just(0x0B), Just(0x0C), Just(0x0D), Just(0x0E), any::<u8>()],
        dims in proptest::collection::vec(prop_oneof![0u32..4, Just(u32::MAX)], 1..4),
        data in proptest::collection::vec(any::<u8>(), 0..100),
        kind in kinds(),
        gzipped in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0, 0, code, dims.len() as u8];
        for d in &dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&data);
        let bytes = if gzipped { gzip(&bytes) } else { bytes };
        let f = write(dir.path(), "f", &bytes);
        check(load_idx(&f, &f, kind));
    }
}

#[test]
fn deeply_nested_npy_header_is_refused_without_recursing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = "(".repeat(5000).into_bytes();
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&h);
    let p = write(dir.path(), "deep.npy", &bytes);
    let msg = load_npy(&p, &p, TargetKind::Float).unwrap_err().to_string();
    assert!(msg.contains("nests too deeply"), "{msg}");
}

/// An empty array whose other dimensions overflow npyz's stride arithmetic
/// (found by the proptest above) is refused, not a panic.
#[test]
fn empty_npy_array_with_huge_other_dimensions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = npy_header("<f4", false, &[0, 6_148_914_691_236_517_205, 4]);
    let p = write(dir.path(), "x.npy", &bytes);
    let msg = load_npy(&p, &p, TargetKind::Float).unwrap_err().to_string();
    assert!(msg.contains("too large"), "{msg}");
}
