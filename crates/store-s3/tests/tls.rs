//! HTTPS with a private CA, end to end: a moto server on 127.0.0.1 serving a certificate
//! signed by a CA made for this test. Its own test binary, because one case sets
//! `AWS_CA_BUNDLE` for the process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use s3dlio_store_core::{ErrorKind, ObjectStoreExt};
use s3dlio_store_s3::{S3Options, S3Store, StaticCredentials};

/// Makes `ca.pem` (a self-signed CA) and `server.pem`/`server.key` (a leaf for 127.0.0.1
/// signed by it), with `cryptography`, which moto depends on.
const MAKE_CERTS: &str = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def pem(path, data):
    open(f"{out}/{path}", "wb").write(data)
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("s3dlio test CA")).issuer_name(name("s3dlio test CA"))
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
          content_commitment=False, key_encipherment=False, data_encipherment=False,
          key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
leaf = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
pem("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
pem("server.pem", leaf.public_bytes(serialization.Encoding.PEM))
pem("server.key", key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

/// An HTTPS moto server, stopped on drop.
struct HttpsMoto {
    child: Child,
    endpoint: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for HttpsMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("S3DLIO_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("S3DLIO_TEST_PYTHON is not set: run the tests with `cargo xtask test`")
    })
}

fn start_https_moto() -> HttpsMoto {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(&py)
        .args(["-c", MAKE_CERTS])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "making certificates: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
    let child = Command::new(&py)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .arg("-c")
        .arg(dir.path().join("server.pem"))
        .arg("-k")
        .arg(dir.path().join("server.key"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let server = HttpsMoto {
        child,
        endpoint: format!("https://127.0.0.1:{port}"),
        ca: dir.path().join("ca.pem"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not listen on {port}: {}",
            std::fs::read_to_string(server._dir.path().join("moto.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn options(endpoint: &str, ca: Option<&Path>) -> S3Options {
    S3Options {
        endpoint_url: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        ca_bundle: ca.map(Path::to_path_buf),
        credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            session_token: None,
        }),
        max_attempts: 2,
        ..S3Options::default()
    }
}

async fn round_trip(store: &S3Store, key: &str) -> s3dlio_store_core::Result<Bytes> {
    let data = Bytes::from_static(b"over TLS, verified by a private CA");
    store.put_bytes(key, data).await?;
    store.get_bytes(key).await
}

#[tokio::test]
async fn https_endpoints_with_a_private_ca() {
    let server = start_https_moto();
    let bucket = "s3dlio-tls";

    // Trusted through the option: the whole path works, bucket creation included.
    let store = S3Store::new(bucket, options(&server.endpoint, Some(&server.ca)))
        .await
        .unwrap();
    store.create_bucket().await.unwrap();
    // GETs take the lean path (its own TLS client): it must trust the same CA.
    assert!(store.lean_path_active());
    assert_eq!(
        round_trip(&store, "explicit").await.unwrap(),
        "over TLS, verified by a private CA"
    );

    // Not trusted: refused quickly with a cause that names the certificate, not a hang.
    let untrusted = S3Store::new(bucket, options(&server.endpoint, None))
        .await
        .unwrap();
    let started = Instant::now();
    let e = round_trip(&untrusted, "untrusted").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_retryable(), "{e}");
    let mut chain = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        chain += &format!(" / {c}");
        cause = c.source();
    }
    assert!(
        chain.contains("TLS certificate is not trusted") && chain.contains("UnknownIssuer"),
        "the error should say the certificate was not trusted: {chain}"
    );

    // A GET alone (the lean path's TLS client) is refused the same way.
    let e = untrusted.get_bytes("explicit").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains("TLS certificate is not trusted"),
        "{e}"
    );

    // Trusted through AWS_CA_BUNDLE, as AWS users set it (this binary's only test, so
    // setting the variable races with nothing).
    std::env::set_var("AWS_CA_BUNDLE", &server.ca);
    let from_env = S3Store::new(bucket, options(&server.endpoint, None))
        .await
        .unwrap();
    assert_eq!(
        round_trip(&from_env, "from-env").await.unwrap(),
        "over TLS, verified by a private CA"
    );
    std::env::remove_var("AWS_CA_BUNDLE");
}
