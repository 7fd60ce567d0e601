//! Our index against the `tfrecord` PyPI package's `tfrecord2idx` on files its own writer
//! made, byte for byte; and our writer against its writer. `cargo xtask test` sets
//! S3DLIO_TEST_PYTHON to a venv that has the package, and then these checks are required.

use s3dlio_store_core::Registry;

#[path = "../../cli/tests/common/python.rs"]
mod python;
use python::python_with;
use s3dlio_tfrecord_index::{
    index_file, index_stream, index_uri, read_index_file, write_index, IndexOptions, RecordReader,
    TfRecordWriter,
};
use std::path::Path;

/// Run `script` with the test Python if it has the `tfrecord` package (required under
/// `cargo xtask test`); `None` without it.
fn python(script: &str) -> Option<()> {
    python_with(&["tfrecord.writer", "tfrecord.tools.tfrecord2idx"], script).map(drop)
}

/// Raw records (the package's writer frames what its serializer returns; ours returns the
/// bytes as they are), sizes including 0 and two above 16 MiB.
const SIZES: &[usize] = &[
    0,
    1,
    5,
    0,
    1000,
    (16 << 20) + 3,
    0,
    65536,
    12,
    (17 << 20) + 1,
    100,
    0,
];

fn python_file(dir: &Path) -> Option<()> {
    let sizes = SIZES
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    python(&format!(
        r#"
import os, random
from tfrecord.writer import TFRecordWriter
from tfrecord.tools.tfrecord2idx import create_index
example = TFRecordWriter.serialize_tf_example
TFRecordWriter.serialize_tf_example = staticmethod(lambda raw: raw)
random.seed(1)
w = TFRecordWriter({data:?})
for n in [{sizes}]:
    w.write(random.randbytes(n))
w.close()
# A few real tf.train.Examples too, as the package writes them.
w = TFRecordWriter({examples:?})
TFRecordWriter.serialize_tf_example = staticmethod(example)
for i in range(50):
    w.write({{"label": (i, "int"), "image": (random.randbytes(i * 37), "byte"), "x": ([0.5] * (i % 5), "float")}})
w.close()
create_index({data:?}, {data_idx:?})
create_index({examples:?}, {examples_idx:?})
open({empty:?}, "wb").close()
create_index({empty:?}, {empty_idx:?})
"#,
        data = dir.join("py.tfrecord"),
        data_idx = dir.join("py.tfrecord.pyidx"),
        examples = dir.join("ex.tfrecord"),
        examples_idx = dir.join("ex.tfrecord.pyidx"),
        empty = dir.join("empty.tfrecord"),
        empty_idx = dir.join("empty.tfrecord.pyidx"),
    ))
}

fn our_index_text(path: &Path, opts: IndexOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_index(&index_file(path, opts).unwrap(), &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn index_is_byte_identical_to_tfrecord2idx() {
    let t = tempfile::tempdir().unwrap();
    if python_file(t.path()).is_none() {
        return;
    }
    for name in ["py.tfrecord", "ex.tfrecord", "empty.tfrecord"] {
        let file = t.path().join(name);
        let theirs = std::fs::read(t.path().join(format!("{name}.pyidx"))).unwrap();
        for opts in [
            IndexOptions::default(),
            IndexOptions {
                verify_data: true,
                allow_empty: true,
            },
        ] {
            assert_eq!(our_index_text(&file, opts), theirs, "{name} {opts:?}");
        }
        // The same through the file:// store's streaming GET, in small chunks.
        let bytes = std::fs::read(&file).unwrap();
        let chunks: Vec<_> = bytes
            .chunks(4093)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let streamed = index_stream(
            Box::pin(futures::stream::iter(chunks)),
            IndexOptions::default(),
        )
        .await
        .unwrap();
        let mut text = Vec::new();
        write_index(&streamed, &mut text).unwrap();
        assert_eq!(text, theirs, "{name} streamed");
        assert_eq!(
            read_index_file(t.path().join(format!("{name}.pyidx"))).unwrap(),
            streamed
        );
    }
    let data_len = std::fs::metadata(t.path().join("py.tfrecord"))
        .unwrap()
        .len();
    assert_eq!(
        data_len,
        SIZES.iter().map(|&s| s as u64 + 16).sum::<u64>(),
        "the package frames raw records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn our_writer_writes_what_the_package_writes() {
    let t = tempfile::tempdir().unwrap();
    if python_file(t.path()).is_none() {
        return;
    }
    let mut registry = Registry::new();
    s3dlio_store_fs::register(&mut registry);
    for name in ["py.tfrecord", "ex.tfrecord"] {
        let path = t.path().join(name);
        let uri = format!("file://{}", path.display());
        let index = index_uri(&registry, &uri, IndexOptions::verify())
            .await
            .unwrap();
        let reader = RecordReader::open(&registry, &uri, index.clone())
            .await
            .unwrap();
        let all: Vec<usize> = (0..reader.len()).collect();
        let records = reader.records(&all).await.unwrap();
        let mut w = TfRecordWriter::new(Vec::new());
        for (r, e) in records.iter().zip(&index) {
            assert_eq!(w.write_record(r).unwrap(), *e);
        }
        assert_eq!(w.into_inner(), std::fs::read(&path).unwrap(), "{name}");
    }
}
