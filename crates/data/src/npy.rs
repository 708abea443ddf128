//! NumPy sources: a features and a target array, from two `.npy` files or one `.npz` archive.
//!
//! Arrays are decoded by the `npyz` crate, `.npz` archives opened by the `zip` crate. Before a
//! header reaches `npyz` it is checked here (with `py_literal`, the parser `npyz` uses): at most
//! 10,000 bytes as NumPy's own `np.load` allows, shallow nesting, a plain numeric dtype, and a
//! shape whose size neither overflows nor exceeds the bytes that follow. `npyz` multiplies the
//! shape without an overflow check and parses nesting recursively, so an unchecked header could
//! panic or exhaust the stack.
//!
//! An `.npz` member is read only up to the size the archive declares for it, which is checked
//! against the memory budget and, beyond [`RATIO_FREE_BYTES`], against its compressed size
//! ([`MAX_COMPRESSION_RATIO`]): a decompression bomb whose decoded size fits the budget is
//! still refused before it is decoded.
//!
//! Features: shape `(samples,)` (one feature) or `(samples, d1, ...)`, flattened per sample in
//! C order (a Fortran-order array is transposed). Target: `(samples,)` or `(samples, width)`.
//! Dtypes: bool, int8–int64, uint8–uint64, float32, float64, either byte order.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

use npyz::NpyFile;
use py_literal::Value;

use super::{
    file_error, first_non_finite, indexed_names, open_data_file, quoted, read_failed, whole,
    Dataset, Features, FileRows, Origin, Residence, RowUnit, TargetKind, Values, MAX_RESERVE,
};
use crate::error::DataError;
use crate::features::{stamped, Layout};

/// NumPy's `np.load` refuses longer headers by default (`max_header_size=10000`).
const MAX_HEADER_LEN: usize = 10_000;
/// Deepest bracket nesting accepted in a header; NumPy writes depth 2 for plain dtypes.
const MAX_HEADER_DEPTH: usize = 16;
/// Most bytes an `.npz` member may decode to per byte of compressed data it holds. Real arrays
/// compress far less (float data hardly at all, `uint8` images about 5 to 1, one-hot targets
/// about 15 to 1); deflate's ceiling, about 1032 to 1, is reached only by long runs of one
/// value, which is what a decompression bomb is made of.
const MAX_COMPRESSION_RATIO: u64 = 200;
/// Members that decode to at most this many bytes are not held to [`MAX_COMPRESSION_RATIO`]:
/// small arrays of zeros are common and harmless.
const RATIO_FREE_BYTES: u64 = 64 << 20;
/// The message for data that ends early.
const TRUNCATED: &str =
    "the data ends before the shape in its header says; the file is truncated, save it again";

/// Loads `{npy: {features: PATH, target: PATH}}`.
pub fn load_npy(features: &Path, target: &Path, kind: TargetKind) -> Result<Dataset, DataError> {
    load_npy_in(features, target, kind, Residence::Memory)
}

/// [`load_npy`], keeping the features in their file when `residence` says so and the file
/// allows it (C order, a dtype other than bool): every value is still read and checked here,
/// in bounded chunks.
pub fn load_npy_in(
    features: &Path,
    target: &Path,
    kind: TargetKind,
    residence: Residence,
) -> Result<Dataset, DataError> {
    let x_name = quoted(features);
    let y_name = quoted(target);
    let x_stem = features
        .file_stem()
        .map_or_else(|| "x".into(), |s| s.to_string_lossy().into_owned());
    let in_file = match residence {
        Residence::File => file_rows(features, &x_name)?,
        Residence::Memory => None,
    };
    let x = match in_file {
        Some(x) => x,
        None => in_memory(read_npy_file(features, &x_name, Want::Features)?, &x_name)?,
    };
    let y = read_npy_file(target, &y_name, Want::Target(kind))?;
    assemble(x, y, &x_name, &y_name, &x_stem)
}

/// The features of the `.npy` file at `path` left in the file, with the array's shape; `None`
/// when they must be read into memory (Fortran order, bool, or no rows or values per row,
/// which the in-memory path reports).
fn file_rows(path: &Path, shown: &str) -> Result<Option<(Vec<usize>, Features)>, DataError> {
    let file = open_data_file(path)?;
    let total = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| read_failed(path, &e))?;
    let err = |message: String| DataError::Invalid(format!("{shown}: {message}"));
    let header = read_header(&mut &file).map_err(err)?;
    check_data_size(&header, total).map_err(err)?;
    // Bool arrays are read whole: their bytes are checked once, in memory.
    let codec = match header.elem {
        Elem::Bool => return Ok(None),
        Elem::Int(_) | Elem::Uint(_) | Elem::Float(_) => Codec {
            elem: header.elem,
            big_endian: header.big_endian,
        },
    };
    let n = header.shape.first().copied().unwrap_or(0);
    let width = header
        .shape
        .get(1..)
        .unwrap_or(&[])
        .iter()
        .try_fold(1usize, |w, &d| w.checked_mul(d))
        .unwrap_or(0);
    if (header.fortran && header.shape.len() > 1) || n == 0 || width == 0 {
        return Ok(None);
    }
    let offset = header.bytes.len() as u64;
    let rows = FileRows::new(
        stamped(file, path)?,
        (shown.to_owned(), path.to_path_buf()),
        Layout::Npy { offset, codec },
        (n, width),
    );
    Ok(Some((header.shape, Features::File(rows))))
}

/// A decoded feature array's shape and values.
fn in_memory(x: Array, x_name: &str) -> Result<(Vec<usize>, Features), DataError> {
    match x.values {
        Values::F32(values) => Ok((x.shape, Features::Memory(values))),
        Values::I64(_) => Err(DataError::Invalid(format!(
            "{x_name}: features were read as class indices (a bug)"
        ))),
    }
}

/// How the elements of an array's data are decoded to `f32`, as the in-memory reader does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Codec {
    elem: Elem,
    big_endian: bool,
}

impl Codec {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        self.elem.size() as usize
    }

    /// Appends the elements of `bytes` (whole elements), decoded, to `out`: bool as 0 or 1
    /// (another byte is an error, as in NumPy's own reader), float64 beyond f32's range as
    /// infinite (the finiteness check reports it).
    pub(crate) fn decode(self, bytes: &[u8], out: &mut Vec<f32>) -> io::Result<()> {
        macro_rules! each {
            ($t:ty, $conv:expr) => {{
                const N: usize = std::mem::size_of::<$t>();
                out.extend(bytes.chunks_exact(N).map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    let v = if self.big_endian {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    };
                    $conv(v)
                }));
            }};
        }
        match self.elem {
            Elem::Bool => {
                if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("invalid value for bool: {b}"),
                    ));
                }
                out.extend(bytes.iter().map(|&b| f32::from(b)));
            }
            Elem::Int(1) => each!(i8, f32::from),
            Elem::Int(2) => each!(i16, f32::from),
            Elem::Int(4) => each!(i32, |v: i32| v as f32),
            Elem::Int(_) => each!(i64, |v: i64| v as f32),
            Elem::Uint(1) => each!(u8, f32::from),
            Elem::Uint(2) => each!(u16, f32::from),
            Elem::Uint(4) => each!(u32, |v: u32| v as f32),
            Elem::Uint(_) => each!(u64, |v: u64| v as f32),
            Elem::Float(4) => each!(f32, |v: f32| v),
            Elem::Float(_) => each!(f64, |v: f64| v as f32),
        }
        Ok(())
    }
}

/// Loads `{npz: PATH, features: NAME, target: NAME}`: arrays `NAME.npy` of the archive.
pub fn load_npz(
    path: &Path,
    features: &str,
    target: &str,
    kind: TargetKind,
) -> Result<Dataset, DataError> {
    let file = open_data_file(path)?;
    let file_len = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| read_failed(path, &e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        file_error(
            path,
            format!("not a readable .npz (zip) archive ({e}); save it with np.savez"),
        )
    })?;
    let x_name = format!("{} array `{features}`", quoted(path));
    let y_name = format!("{} array `{target}`", quoted(path));
    let x = read_npz_member(
        &mut archive,
        (path, file_len),
        features,
        &x_name,
        Want::Features,
    )?;
    let y = read_npz_member(
        &mut archive,
        (path, file_len),
        target,
        &y_name,
        Want::Target(kind),
    )?;
    assemble(in_memory(x, &x_name)?, y, &x_name, &y_name, features)
}

/// Reads one array of an archive (a file of `file_len` bytes), or says which arrays it has.
fn read_npz_member(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    (path, file_len): (&Path, u64),
    name: &str,
    shown: &str,
    want: Want,
) -> Result<Array, DataError> {
    let member = format!("{name}.npy");
    let index = archive.index_for_name(&member).ok_or_else(|| {
        let mut names: Vec<String> = archive
            .file_names()
            .filter_map(|n| {
                let n = n.ok()?;
                n.strip_suffix(".npy").map(|n| format!("`{n}`"))
            })
            .collect();
        names.sort();
        let have = if names.is_empty() {
            "no arrays".to_owned()
        } else {
            format!("the arrays {}", graphc_spec::shown_items(&names))
        };
        file_error(
            path,
            format!("no array named `{name}`; the archive has {have}; fix the name in the spec"),
        )
    })?;
    let entry = archive
        .by_index(index)
        .map_err(|e| file_error(path, format!("cannot read array `{name}` ({e})")))?;
    let size = entry.size();
    // The deflate stream is read from the compressed bytes the archive declares, and no more
    // than the file holds; the decoded data is read up to `size` only.
    let compressed = entry.compressed_size().min(file_len);
    read_array(entry, (size, Some(compressed)), shown, want)
}

/// Refuses an archive member that declares `size` decoded bytes from `compressed` bytes when
/// it is over [`RATIO_FREE_BYTES`] and packed more than [`MAX_COMPRESSION_RATIO`] to 1.
fn check_ratio(size: u64, compressed: u64, shown: &str) -> Result<(), DataError> {
    if size <= RATIO_FREE_BYTES || size <= compressed.saturating_mul(MAX_COMPRESSION_RATIO) {
        return Ok(());
    }
    Err(DataError::Invalid(format!(
        "{shown}: decodes to {} from {} of compressed data, more than {MAX_COMPRESSION_RATIO} to 1 (a decompression bomb; arrays of real data compress far less); save the arrays with np.savez, uncompressed",
        crate::byte_size(size),
        crate::byte_size(compressed)
    )))
}

/// Reads an `.npy` file.
fn read_npy_file(path: &Path, shown: &str, want: Want) -> Result<Array, DataError> {
    let file = open_data_file(path)?;
    let len = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| read_failed(path, &e))?;
    read_array(
        BufReader::with_capacity(1 << 16, file),
        (len, None),
        shown,
        want,
    )
}

/// What an array is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Features: any numeric dtype, as `f32`.
    Features,
    /// The target, read as the loss wants when it is one value per sample.
    Target(TargetKind),
}

/// A decoded array, C order.
struct Array {
    shape: Vec<usize>,
    values: Values,
}

/// A plain numeric element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Bool,
    Int(u8),
    Uint(u8),
    Float(u8),
}

impl Elem {
    /// Bytes per element.
    fn size(self) -> u64 {
        match self {
            Elem::Bool => 1,
            Elem::Int(s) | Elem::Uint(s) | Elem::Float(s) => u64::from(s),
        }
    }
}

/// A header, checked.
struct Header {
    shape: Vec<usize>,
    elem: Elem,
    /// Whether multi-byte elements are stored most significant byte first.
    big_endian: bool,
    fortran: bool,
    /// The bytes read so far (magic to end of header), replayed to `npyz`.
    bytes: Vec<u8>,
}

/// Reads one array from `reader`, which holds `total` bytes (file or archive member size),
/// decoded from `compressed` bytes for an archive member.
fn read_array(
    mut reader: impl Read,
    (total, compressed): (u64, Option<u64>),
    shown: &str,
    want: Want,
) -> Result<Array, DataError> {
    let err = |message: String| DataError::Invalid(format!("{shown}: {message}"));
    let header = read_header(&mut reader).map_err(err)?;
    let count = check_data_size(&header, total).map_err(err)?;
    // Checked against the budget before reading: a compressed `.npz` member can declare far
    // more data than its archive holds, and reading stops at the declared count anyway.
    let class_column = matches!(want, Want::Target(TargetKind::ClassIndex))
        && (header.shape.len() == 1 || (header.shape.len() == 2 && header.shape[1] == 1));
    let decoded = (count as u64).checked_mul(if class_column { 8 } else { 4 });
    crate::check_budget(decoded, || {
        format!("{shown}: shape {}", shape_text(&header.shape))
    })?;
    if let Some(compressed) = compressed {
        check_ratio(total, compressed, shown)?;
    }
    let Header {
        shape,
        elem,
        big_endian,
        fortran,
        bytes,
    } = header;
    let npy = NpyFile::new(Cursor::new(bytes).chain(reader))
        .map_err(|e| err(format!("not a valid .npy array ({e})")))?;
    let read_err = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => err(TRUNCATED.into()),
        _ => err(format!("cannot read the data ({e})")),
    };
    let values = if class_column {
        let v = read_i64(npy, elem, count, shown, &shape).map_err(|e| match e {
            ReadFailure::Io(e) => read_err(e),
            ReadFailure::Data(e) => e,
        })?;
        Values::I64(v)
    } else {
        let codec = Codec { elem, big_endian };
        Values::F32(read_f32(npy.into_inner(), codec, count).map_err(read_err)?)
    };
    let values = if fortran && shape.len() > 1 {
        match values {
            Values::F32(v) => Values::F32(fortran_to_c(&v, &shape)),
            Values::I64(v) => Values::I64(fortran_to_c(&v, &shape)),
        }
    } else {
        values
    };
    Ok(Array { shape, values })
}

/// The number of elements `header` declares, when the `total` bytes of the file or member
/// hold them.
fn check_data_size(header: &Header, total: u64) -> Result<usize, String> {
    let count = header.shape.iter().product::<usize>();
    let available = total.saturating_sub(header.bytes.len() as u64);
    let needed = (count as u64).saturating_mul(header.elem.size());
    if needed > available {
        return Err(format!(
            "the header promises shape {} ({needed} bytes of data) but only {available} bytes follow; the file is truncated, save it again",
            shape_text(&header.shape)
        ));
    }
    Ok(count)
}

/// Reads and checks the magic, version and header dict.
fn read_header(reader: &mut impl Read) -> Result<Header, String> {
    let mut bytes = vec![0u8; 8];
    reader.read_exact(&mut bytes).map_err(|_| {
        "not a NumPy .npy array: the file is shorter than the 8-byte preamble; save it with np.save"
            .to_owned()
    })?;
    if &bytes[..6] != b"\x93NUMPY" {
        return Err(format!(
            "not a NumPy .npy array: it starts with {} instead of \\x93NUMPY; save it with np.save",
            hex_prefix(&bytes)
        ));
    }
    let len_bytes = match (bytes[6], bytes[7]) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        (major, minor) => {
            return Err(format!(
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are); save it again with np.save"
            ))
        }
    };
    let mut len_buf = vec![0u8; len_bytes];
    reader
        .read_exact(&mut len_buf)
        .map_err(|_| "the file ends inside its header; it is truncated".to_owned())?;
    let header_len = len_buf
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    bytes.extend_from_slice(&len_buf);
    if header_len > MAX_HEADER_LEN {
        return Err(format!(
            "the header is {header_len} bytes, more than the {MAX_HEADER_LEN} NumPy itself reads; save the array again with np.save"
        ));
    }
    let start = bytes.len();
    bytes.resize(start + header_len, 0);
    reader
        .read_exact(&mut bytes[start..])
        .map_err(|_| "the file ends inside its header; it is truncated".to_owned())?;
    let text = std::str::from_utf8(&bytes[start..])
        .map_err(|_| "the header is not text; the file is damaged".to_owned())?;
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_HEADER_DEPTH {
                    return Err("the header nests too deeply to be a NumPy array header".into());
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let value: Value = text
        .trim_end()
        .parse()
        .map_err(|_| "the header is not a Python dict literal; the file is damaged".to_owned())?;
    let Value::Dict(entries) = value else {
        return Err("the header is not a Python dict; the file is damaged".into());
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| matches!(k, Value::String(s) if s == key))
            .map(|(_, v)| v)
            .ok_or_else(|| format!("the header has no `{key}`; the file is damaged"))
    };
    let descr = match get("descr")? {
        Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "dtype {other} is a structured (record) dtype, which is not supported; save a plain numeric array, e.g. x.astype(np.float32)"
            ))
        }
    };
    let elem = parse_descr(&descr)?;
    // `=` is this machine's order; `|` marks single bytes, which have none.
    let big_endian =
        descr.starts_with('>') || (descr.starts_with('=') && cfg!(target_endian = "big"));
    let fortran = match get("fortran_order")? {
        Value::Boolean(b) => *b,
        _ => return Err("the header's `fortran_order` is not True or False".into()),
    };
    let dims = match get("shape")? {
        Value::Tuple(v) | Value::List(v) => v,
        _ => return Err("the header's `shape` is not a tuple".into()),
    };
    let mut shape = Vec::with_capacity(dims.len());
    for d in dims {
        let Value::Integer(i) = d else {
            return Err("the header's `shape` holds something other than integers".into());
        };
        let d = u64::try_from(i)
            .ok()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| format!("the header's shape has dimension {i}, which is not a size"))?;
        shape.push(d);
    }
    let too_big = || {
        format!(
            "the shape {} is too large to hold in memory",
            shape_text(&shape)
        )
    };
    // npyz computes strides from every dimension, so the product of the
    // non-zero ones must fit too, even when a zero makes the array empty.
    let bytes_of_nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(elem.size() as usize, |acc, &d| acc.checked_mul(d));
    if bytes_of_nonzero.is_none() {
        return Err(too_big());
    }
    Ok(Header {
        shape,
        elem,
        big_endian,
        fortran,
        bytes,
    })
}

/// The element type of a plain dtype string such as `<f4`, `|u1`, `>i8`, `|b1`.
fn parse_descr(descr: &str) -> Result<Elem, String> {
    let unsupported = |what: &str| {
        format!(
            "dtype `{descr}` ({what}) is not supported; save the array as float32, float64, an integer type or bool, e.g. x.astype(np.float32)"
        )
    };
    let mut chars = descr.chars();
    let (Some(order), Some(code)) = (chars.next(), chars.next()) else {
        return Err(unsupported("not a dtype"));
    };
    if !matches!(order, '<' | '>' | '|' | '=') {
        return Err(unsupported("not a dtype"));
    }
    let size: Option<u8> = chars.as_str().parse().ok();
    let elem = match (code, size) {
        ('b', Some(1)) => Elem::Bool,
        ('i', Some(s @ (1 | 2 | 4 | 8))) => Elem::Int(s),
        ('u', Some(s @ (1 | 2 | 4 | 8))) => Elem::Uint(s),
        ('f', Some(s @ (4 | 8))) => Elem::Float(s),
        ('f', _) => return Err(unsupported("a float size other than 32 or 64 bits")),
        ('U' | 'S' | 'a', _) => return Err(unsupported("text")),
        ('O', _) => return Err(unsupported("Python objects")),
        ('c', _) => return Err(unsupported("complex numbers")),
        ('m' | 'M', _) => return Err(unsupported("dates or times")),
        _ => return Err(unsupported("not a numeric dtype")),
    };
    // npyz reads little- and big-endian, and `|`/`=` (native) as written on this machine.
    Ok(elem)
}

/// Why reading class indices failed.
enum ReadFailure {
    /// The bytes could not be read.
    Io(io::Error),
    /// A value is not a class index.
    Data(DataError),
}

/// Reads `count` elements from `reader` (at the array's data) as `f32` with `codec`, in
/// pieces of 64 KiB.
fn read_f32(mut reader: impl Read, codec: Codec, count: usize) -> io::Result<Vec<f32>> {
    let mut out = Vec::with_capacity(count.min(MAX_RESERVE));
    let size = codec.size();
    let mut piece = vec![0u8; (1 << 16) / size * size];
    // The caller checked `count × size` bytes against the file's length.
    let mut left = count
        .checked_mul(size)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the array is too large"))?;
    while left > 0 {
        let n = left.min(piece.len());
        reader.read_exact(&mut piece[..n])?;
        codec.decode(&piece[..n], &mut out)?;
        left -= n;
    }
    Ok(out)
}

/// Reads a class-index column: integers as they are, floats only when whole.
fn read_i64<R: Read>(
    npy: NpyFile<R>,
    elem: Elem,
    count: usize,
    shown: &str,
    shape: &[usize],
) -> Result<Vec<i64>, ReadFailure> {
    let mut out: Vec<i64> = Vec::with_capacity(count.min(MAX_RESERVE));
    let bad = |row: usize, value: String| {
        ReadFailure::Data(DataError::Invalid(format!(
            "{shown} row {row}: {value} is not a class index; class targets must be whole numbers (0, 1, 2, ...), shape {} here",
            shape_text(shape)
        )))
    };
    macro_rules! each {
        ($t:ty, $conv:expr) => {{
            let reader = npy.data::<$t>().map_err(|e| {
                ReadFailure::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            })?;
            for v in reader {
                let v = v.map_err(ReadFailure::Io)?;
                let row = out.len();
                out.push($conv(v).ok_or_else(|| bad(row, format!("{v}")))?);
            }
        }};
    }
    match elem {
        Elem::Bool => each!(bool, |v: bool| Some(i64::from(v))),
        Elem::Int(1) => each!(i8, |v: i8| Some(i64::from(v))),
        Elem::Int(2) => each!(i16, |v: i16| Some(i64::from(v))),
        Elem::Int(4) => each!(i32, |v: i32| Some(i64::from(v))),
        Elem::Int(_) => each!(i64, Some),
        Elem::Uint(1) => each!(u8, |v: u8| Some(i64::from(v))),
        Elem::Uint(2) => each!(u16, |v: u16| Some(i64::from(v))),
        Elem::Uint(4) => each!(u32, |v: u32| Some(i64::from(v))),
        Elem::Uint(_) => each!(u64, |v: u64| i64::try_from(v).ok()),
        Elem::Float(4) => each!(f32, |v: f32| whole(f64::from(v))),
        Elem::Float(_) => each!(f64, whole),
    }
    Ok(out)
}

/// The C-order copy of an array stored in Fortran order (first index fastest).
fn fortran_to_c<T: Copy>(data: &[T], shape: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    // Fortran strides: the first axis has stride 1.
    let mut strides = Vec::with_capacity(shape.len());
    let mut s = 1usize;
    for &d in shape {
        strides.push(s);
        s *= d;
    }
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    for _ in 0..data.len() {
        out.push(data[offset]);
        // Advance the C-order multi-index (last axis fastest), keeping `offset` in step.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            offset -= strides[axis] * shape[axis];
            index[axis] = 0;
        }
    }
    out
}

/// Builds the data set from the two arrays, checking their shapes and values.
fn assemble(
    (x_shape, features): (Vec<usize>, Features),
    y: Array,
    x_name: &str,
    y_name: &str,
    feature_prefix: &str,
) -> Result<Dataset, DataError> {
    if x_shape.is_empty() {
        return Err(DataError::Invalid(format!(
            "{x_name}: the features array is a scalar (shape ()); it needs one row per sample, shape (samples, features)"
        )));
    }
    let n = x_shape[0];
    if n == 0 {
        return Err(DataError::Invalid(format!(
            "{x_name}: the array has no samples (shape {}); the data set is empty",
            shape_text(&x_shape)
        )));
    }
    // `[N, C, H, W]` and `[N, C·H·W]` give the same rows (C order): a sample's values in a row.
    let width = x_shape[1..]
        .iter()
        .try_fold(1usize, |w, &d| w.checked_mul(d))
        .unwrap_or(0);
    if width == 0 {
        return Err(DataError::Invalid(format!(
            "{x_name}: the array has no features per sample (shape {}); it needs shape (samples, features)",
            shape_text(&x_shape)
        )));
    }
    // Every value is checked before training, a file's in bounded chunks.
    features.try_for_each_chunk::<DataError>(width, |first, values| match first_non_finite(values) {
        None => Ok(()),
        Some((i, v)) => Err(DataError::Invalid(format!(
            "{}: {v} is not a finite number (or too large for float32); NaN and infinity are not allowed in features (fill in a real value or remove the row)",
            element_location(x_name, &x_shape, first * width + i),
        ))),
    })?;
    if y.shape.is_empty() || y.shape.len() > 2 {
        return Err(DataError::Invalid(format!(
            "{y_name}: the target array has shape {}; a target is one value per sample, shape (samples,), or one row per sample, shape (samples, width)",
            shape_text(&y.shape)
        )));
    }
    if y.shape[0] != n {
        return Err(DataError::Invalid(format!(
            "{x_name} has {n} samples (shape {}) but {y_name} has {} (shape {}); both need one row per sample",
            shape_text(&x_shape),
            y.shape[0],
            shape_text(&y.shape)
        )));
    }
    let y_width = y.shape.get(1).copied().unwrap_or(1);
    let targets = y.values.into_targets(
        y_width,
        || {
            DataError::Invalid(format!(
                "{y_name}: the target array has no values per sample (shape {})",
                shape_text(&y.shape)
            ))
        },
        |i, v| {
            DataError::Invalid(format!(
                "{}: {v} is not a finite number (or too large for float32); NaN and infinity are not allowed in targets",
                element_location(y_name, &y.shape, i),
            ))
        },
    )?;
    Ok(Dataset {
        features,
        feature_names: indexed_names(feature_prefix, width),
        targets,
        origin: Origin {
            features: x_name.to_owned(),
            targets: y_name.to_owned(),
            unit: RowUnit::Row,
            rows: None,
        },
    })
}

/// Where flat element `i` of a C-order array is: "NAME row R, column C" for 2-D arrays,
/// "NAME row R" for 1-D, "NAME at [i, j, k]" otherwise.
fn element_location(name: &str, shape: &[usize], i: usize) -> String {
    let mut index = vec![0usize; shape.len()];
    let mut rest = i;
    for (axis, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            index[axis] = rest % d;
            rest /= d;
        }
    }
    match index.as_slice() {
        [r] => format!("{name} row {r}"),
        [r, c] => format!("{name} row {r}, column {c}"),
        _ => format!("{name} at {}", graphc_spec::shown_list(&index)),
    }
}

/// A shape as NumPy prints it: `(3,)`, `(3, 4)`, `()`; a long one capped as
/// [`graphc_spec::shown_list`] caps lists.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", graphc_spec::shown_items(shape)),
    }
}

/// The first bytes of a file, escaped for a message.
fn hex_prefix(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(6)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_to_c_transposes_two_and_three_axes() {
        // A 2×3 array [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        assert_eq!(
            fortran_to_c(&[0, 3, 1, 4, 2, 5], &[2, 3]),
            vec![0, 1, 2, 3, 4, 5]
        );
        // 2×2×2: element [i,j,k] = 4i + 2j + k, stored at i + 2j + 4k.
        let mut f = vec![0; 8];
        for i in 0..2 {
            for j in 0..2 {
                for k in 0..2 {
                    f[i + 2 * j + 4 * k] = 4 * i + 2 * j + k;
                }
            }
        }
        assert_eq!(fortran_to_c(&f, &[2, 2, 2]), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn members_packed_tighter_than_the_ratio_are_refused_beyond_the_free_size() {
        let free = RATIO_FREE_BYTES;
        assert!(check_ratio(free, 1, "`a.npz` array `x`").is_ok(), "small");
        let limit = (free + 1).div_ceil(MAX_COMPRESSION_RATIO);
        assert!(check_ratio(free + 1, limit, "x").is_ok(), "at the ratio");
        let msg = check_ratio(4 << 30, 4 << 20, "`a.npz` array `x`")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "`a.npz` array `x`: decodes to 4.0 GiB from 4.0 MiB of compressed data, more than 200 to 1 (a decompression bomb; arrays of real data compress far less); save the arrays with np.savez, uncompressed"
        );
        assert!(check_ratio(u64::MAX, u64::MAX, "x").is_ok(), "no overflow");
    }

    #[test]
    fn long_shapes_are_capped_in_messages() {
        assert_eq!(shape_text(&[3]), "(3,)");
        assert_eq!(shape_text(&[3, 4]), "(3, 4)");
        assert_eq!(shape_text(&[]), "()");
        assert_eq!(
            shape_text(&[1; 3000]),
            "(1, 1, 1, 1, 1, 1, 1, 1, … (3000 in all))"
        );
    }

    #[test]
    fn element_location_names_row_and_column() {
        assert_eq!(
            element_location("`x.npy`", &[4, 3], 7),
            "`x.npy` row 2, column 1"
        );
        assert_eq!(element_location("`y.npy`", &[4], 3), "`y.npy` row 3");
        assert_eq!(
            element_location("`x.npy`", &[2, 2, 3], 11),
            "`x.npy` at [1, 1, 2]"
        );
    }

    #[test]
    fn descr_parsing_accepts_numeric_dtypes_and_names_the_rest() {
        assert_eq!(parse_descr("<f4"), Ok(Elem::Float(4)));
        assert_eq!(parse_descr(">i8"), Ok(Elem::Int(8)));
        assert_eq!(parse_descr("|u1"), Ok(Elem::Uint(1)));
        assert_eq!(parse_descr("|b1"), Ok(Elem::Bool));
        let e = parse_descr("<U5").unwrap_err();
        assert!(e.contains("`<U5` (text) is not supported"), "{e}");
        assert!(parse_descr("<f2").unwrap_err().contains("float size"));
        assert!(parse_descr("<c8").unwrap_err().contains("complex"));
        assert!(parse_descr("|O").unwrap_err().contains("Python objects"));
        assert!(parse_descr("").is_err());
    }
}
