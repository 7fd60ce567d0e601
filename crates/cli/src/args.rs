//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::units::{count_arg, positive_count_arg, positive_size_arg, size_arg};

/// s3-cli: list, read, write and copy objects on S3 and local file systems.
#[derive(Debug, Parser)]
#[command(name = "s3-cli", version, about, max_term_width = 100)]
pub struct Cli {
    /// More logging on stderr: -v info, -vv debug (RUST_LOG overrides).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Machine-readable output (JSON lines) where it fits: ls, stat, list-buckets,
    /// oplog stats, and the --metrics report.
    #[arg(long, global = true)]
    pub json: bool,
    /// Write every storage operation to FILE (MinIO warp TSV, zstd-compressed).
    #[arg(long, global = true, value_name = "FILE")]
    pub op_log: Option<PathBuf>,
    /// Print latency metrics per operation (count, bytes, p50..p99.99, max) on stderr at
    /// the end.
    #[arg(long, global = true)]
    pub metrics: bool,
    #[command(flatten)]
    pub s3: S3Flags,
    #[command(subcommand)]
    pub command: Command,
}

/// S3 connection settings; each overrides its AWS_* variable.
#[derive(Debug, Clone, Default, Args)]
pub struct S3Flags {
    /// S3 endpoint of an S3-compatible store (else S3DLIO_ENDPOINTS, AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL); several endpoints of one cluster separated by commas are used
    /// together (S3DLIO_LOAD_BALANCE).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// S3 region (else AWS_REGION, the profile's, the bucket's own as the server names it,
    /// us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile for credentials and settings (else AWS_PROFILE).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// PEM file of extra CA certificates to trust (else AWS_CA_BUNDLE).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Send S3 requests unsigned, without credentials: public buckets (else
    /// S3DLIO_NO_SIGN_REQUEST).
    #[arg(long, global = true)]
    pub no_sign_request: bool,
    /// Accept a Requester Pays bucket's charges (else S3DLIO_REQUEST_PAYER).
    #[arg(long, global = true, value_name = "requester", value_parser = ["requester"])]
    pub request_payer: Option<String>,
    /// Server-side encryption of what S3 writes: AES256 or aws:kms (else S3DLIO_SSE).
    #[arg(long, global = true, value_name = "AES256|aws:kms")]
    pub sse: Option<String>,
    /// The KMS key for --sse aws:kms: id, ARN or alias (else S3DLIO_SSE_KMS_KEY_ID).
    #[arg(long, global = true, value_name = "KEY")]
    pub sse_kms_key_id: Option<String>,
    /// Storage class of what S3 writes, such as STANDARD_IA (else S3DLIO_STORAGE_CLASS).
    #[arg(long, global = true, value_name = "CLASS")]
    pub storage_class: Option<String>,
}

impl S3Flags {
    pub fn any(&self) -> bool {
        self.endpoint_url.is_some()
            || self.region.is_some()
            || self.profile.is_some()
            || self.ca_bundle.is_some()
            || self.no_sign_request
            || self.request_payer.is_some()
            || self.sse.is_some()
            || self.sse_kms_key_id.is_some()
            || self.storage_class.is_some()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List objects under a URI prefix.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show one object's metadata.
    Stat(StatArgs),
    /// Read objects: one to stdout or a file, many to a directory (or read and discarded).
    Get(GetArgs),
    /// Write N objects of synthetic data.
    Put(PutArgs),
    /// Upload local files, directories, globs or regex matches to a URI prefix.
    Upload(UploadArgs),
    /// Download an object or a prefix into a local directory, keeping the key hierarchy.
    Download(DownloadArgs),
    /// Copy an object (or, with -r, a prefix) between any two backends, streaming.
    Cp(CpArgs),
    /// Delete an object, or with -r / -p everything under a prefix.
    #[command(alias = "delete")]
    Rm(RmArgs),
    /// Make DEST hold what SRC holds: copy what is missing, differs in size or is newer
    /// (any two backends); with --delete, remove what SRC does not have.
    Sync(SyncArgs),
    /// List the S3 buckets the credentials can see.
    ListBuckets(ListBucketsArgs),
    /// Create a bucket (s3://NAME or NAME) or a directory (file:///path).
    CreateBucket(BucketArgs),
    /// Delete an empty bucket (s3://NAME or NAME) or an empty directory (file:///path).
    DeleteBucket(BucketArgs),
    /// Read op-logs written with --op-log (or by warp).
    #[command(subcommand)]
    Oplog(OplogCommand),
    /// TFRecord files: make their DALI index, check their CRCs.
    #[command(subcommand)]
    Tfrecord(TfrecordCommand),
}

#[derive(Debug, Subcommand)]
pub enum TfrecordCommand {
    /// Write the DALI index (`offset size` per record) of a TFRecord file or object,
    /// byte-identical to tfrecord2idx's.
    Index(TfrecordIndexArgs),
    /// Check every record's framing and both CRCs; fails naming the offset of the first
    /// bad record.
    Verify(TfrecordVerifyArgs),
}

#[derive(Debug, Args)]
pub struct TfrecordIndexArgs {
    /// The TFRecord file: a local path, file://, s3://bucket/key, ...
    pub uri: String,
    /// Where the index goes: a local path, an object URI, or - for stdout. Default:
    /// `<file>.idx` beside a local file, stdout for an object.
    #[arg(short, long, value_name = "PATH")]
    pub out: Option<String>,
    /// Check every record's data CRC too (reads every byte; the length CRCs are always
    /// checked).
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct TfrecordVerifyArgs {
    /// The TFRecord file: a local path, file://, s3://bucket/key, ...
    pub uri: String,
}

#[derive(Debug, Subcommand)]
pub enum OplogCommand {
    /// Per-operation summary of an op-log: count, errors, bytes, mean/p50/p99/max latency,
    /// median time to first byte, throughput.
    Stats(OplogStatsArgs),
}

#[derive(Debug, Args)]
pub struct OplogStatsArgs {
    /// The op-log (zstd-compressed or plain TSV).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// URI prefix: s3://bucket/prefix, file:///dir/ (or an absolute path), or a glob
    /// ('s3://bucket/train/*.npz', '**' for any depth); s3:// alone lists the buckets.
    pub uri: String,
    /// Every key under the prefix (default: one level, deeper keys shown as prefixes).
    #[arg(short, long)]
    pub recursive: bool,
    /// Keep keys whose part below the prefix's directory matches REGEX (unanchored).
    #[arg(short, long, value_name = "REGEX")]
    pub pattern: Option<String>,
    /// Print only the number of entries.
    #[arg(short, long)]
    pub count: bool,
    /// Exact sizes in bytes instead of human-readable ones.
    #[arg(long)]
    pub bytes: bool,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    pub uri: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Object URI, a prefix (ending in '/', or with -r), or a glob ('s3://b/train/*.npz').
    /// Not needed with --keylist.
    #[arg(required_unless_present = "keylist")]
    pub uri: Option<String>,
    /// Where to write: '-' or nothing for stdout (one object), a file, or a directory.
    /// Without it, several objects are read and discarded (a read benchmark).
    pub dest: Option<String>,
    /// Objects read at once.
    #[arg(short, long, default_value = "64", value_parser = positive_count_arg)]
    pub jobs: u64,
    /// Every key under the prefix.
    #[arg(short, long)]
    pub recursive: bool,
    /// First byte to read (one object only).
    #[arg(long, value_parser = size_arg)]
    pub offset: Option<u64>,
    /// Bytes to read from --offset (one object only).
    #[arg(long, value_parser = size_arg)]
    pub length: Option<u64>,
    /// File of object URIs, one per line ('#' comments and blank lines skipped).
    #[arg(long, value_name = "FILE")]
    pub keylist: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectType {
    Raw,
    Npz,
    Tfrecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataGenMode {
    /// Generate each object in chunks as the writer takes them (bounded memory).
    Streaming,
    /// Generate each object whole in memory, then write it in one request.
    SinglePass,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// URI prefix the objects go under; a last segment holding '{}' is the name template.
    pub prefix: String,
    /// Number of objects (1k, 10m accepted).
    #[arg(short, long, default_value = "1", value_parser = count_arg)]
    pub num: u64,
    /// Payload bytes per object (4KiB, 8MB, 1GiB, 1.5GB accepted).
    #[arg(short, long, default_value = "20MiB", value_parser = size_arg)]
    pub size: u64,
    /// Object name template: first '{}' is the index, second the total.
    #[arg(short, long)]
    pub template: Option<String>,
    /// Objects written at once.
    #[arg(short, long, default_value = "32", value_parser = positive_count_arg)]
    pub jobs: u64,
    /// Dedup factor: about 1/DEDUP of the 64 KiB blocks are distinct.
    #[arg(short, long, default_value = "1", value_parser = positive_count_arg)]
    pub dedup: u64,
    /// Compression factor: each block compresses about COMPRESS:1.
    #[arg(short = 'x', long, default_value = "1", value_parser = positive_count_arg)]
    pub compress: u64,
    /// Object layout.
    #[arg(
        short = 'o',
        long = "object-type",
        value_enum,
        ignore_case = true,
        default_value = "raw"
    )]
    pub object_type: ObjectType,
    /// How objects are generated.
    #[arg(long, value_enum, ignore_case = true, default_value = "streaming")]
    pub data_gen_mode: DataGenMode,
    /// Seed for reproducible data (default: random, printed with -v).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Bytes generated per step in streaming mode (rounded up to the 64 KiB block; memory per
    /// object in flight is about one chunk). The bytes written do not depend on it.
    #[arg(long, default_value = "4MiB", value_parser = positive_size_arg)]
    pub chunk_size: u64,
    /// Create the bucket (or directory) first.
    #[arg(short = 'c', long = "create-bucket")]
    pub create_bucket: bool,
    /// This process's rank: it writes objects RANK, RANK+RANKS, ... of the -n (names and
    /// contents as one process would write them). With torchrun: --rank $RANK.
    #[arg(long, default_value = "0", value_parser = count_arg)]
    pub rank: u64,
    /// Processes writing the data set between them (needs --seed when above 1). With
    /// torchrun: --ranks $WORLD_SIZE.
    #[arg(long, default_value = "1", value_parser = positive_count_arg)]
    pub ranks: u64,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Local files, directories, globs ('/data/*.log') or regexes ('/logs/.*\.log$'),
    /// then the destination URI prefix.
    #[arg(required = true, num_args = 2.., value_name = "SRC... DEST")]
    pub paths: Vec<String>,
    /// Files uploaded at once.
    #[arg(short, long, default_value = "32", value_parser = positive_count_arg)]
    pub jobs: u64,
    /// Create the bucket (or directory) first.
    #[arg(short = 'c', long = "create-bucket")]
    pub create_bucket: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Object URI, prefix (ending in '/', or with -r), or glob ('s3://b/logs/**/*.json').
    pub src: String,
    /// Local directory (created if missing).
    pub dest_dir: String,
    /// Every key under the prefix.
    #[arg(short, long)]
    pub recursive: bool,
    /// Objects downloaded at once.
    #[arg(short, long, default_value = "64", value_parser = positive_count_arg)]
    pub jobs: u64,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Object URI, a prefix with -r, or a glob ('s3://b/shards/*.tar', copied into DEST).
    pub src: String,
    /// An object URI, or a prefix ending in '/' (or an existing directory) to copy into.
    pub dest: String,
    /// Copy every key under SRC, keeping the hierarchy below SRC's directory.
    #[arg(short, long)]
    pub recursive: bool,
    /// Objects copied at once (with -r).
    #[arg(short, long, default_value = "32", value_parser = positive_count_arg)]
    pub jobs: u64,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// What to copy from: a prefix or directory (its contents), or a glob
    /// ('s3://b/logs/**/*.json').
    pub src: String,
    /// The prefix or directory that is to hold the same names.
    pub dest: String,
    /// Also delete what DEST has under its prefix and SRC does not (for a glob, only names
    /// the glob takes), once every copy has landed.
    #[arg(long)]
    pub delete: bool,
    /// Copy only when sizes differ or DEST lacks the object (ignore modification times).
    #[arg(long)]
    pub size_only: bool,
    /// Print what would be copied and deleted (one line each, on stdout), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Objects copied at once.
    #[arg(short, long, default_value = "32", value_parser = positive_count_arg)]
    pub jobs: u64,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Object URI, a prefix (ending in '/', or with -r / -p), or a glob
    /// ('s3://b/tmp/**/*.part').
    pub uri: String,
    /// Delete every key under the prefix.
    #[arg(short, long)]
    pub recursive: bool,
    /// Delete only keys whose part below the prefix's directory matches REGEX (unanchored).
    #[arg(short, long, value_name = "REGEX")]
    pub pattern: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListBucketsArgs {
    /// Optional scheme to list (`s3://`, the default); buckets exist only on S3.
    pub scheme: Option<String>,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// s3://NAME, NAME (an S3 bucket), or file:///path.
    pub bucket: String,
}
