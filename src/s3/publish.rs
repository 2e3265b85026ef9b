//! Publishes a local snapshot into a bucket: only what changed, in waves (content,
//! indices, signed Release files, trace), deletes last, the bucket record kept so the
//! next run resumes where a killed one stopped.
//!
//! The local snapshot is the source: it is already verified, durable and complete,
//! and every byte is hashed again on its way out, so a disk that rotted under a
//! snapshot never passes bad bytes on to the bucket.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::order::{self, BucketPlan, Held, Wave};
use super::record::{BucketRecord, RECORD_KEY, RecordError};
use super::target::S3Target;
use crate::manifest::{Entry, Manifest};
use crate::relpath::RelPath;

/// Objects up to this size go up in one PUT, read whole into memory.
const SINGLE_PUT_MAX: u64 = 8 << 20;
/// Multipart part size floor (S3's minimum is 5 MiB); raised for huge files so an
/// upload stays under S3's 10,000 parts.
const PART_MIN: u64 = 8 << 20;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Memory all uploads may hold at once, so a Raspberry Pi with 224 MB publishes
/// at any `concurrency` without swapping.
const MEMORY_BUDGET: u64 = 48 << 20;
/// How often, in uploads or time, the bucket record is written during a publish, so
/// a killed run's successor has few objects to ask about.
const CHECKPOINT_EVERY: u64 = 1000;
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// The metadata key holding an object's SHA256 (sent as `x-amz-meta-sha256`).
const SHA256_META: &str = "sha256";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("bad object key for {path}: {source}")]
    Key {
        path: String,
        #[source]
        source: object_store::path::Error,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{what}: {} failed{}", .errors.len(), crate::failures::first_failures(.errors))]
    Failed { what: String, errors: Vec<String> },
}

/// What a publish to the bucket did, for the run summary and `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketReport {
    pub url: String,
    pub snapshot: Option<String>,
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Objects whose SHA256 was asked for because a killed publish left them unrecorded.
    pub checked: u64,
    /// PUT requests: objects, parts, multipart creations and completions, records.
    pub put_requests: u64,
    pub seconds: f64,
}

pub struct Publisher {
    store: Arc<dyn ObjectStore>,
    target: S3Target,
    concurrency: usize,
    memory: Arc<tokio::sync::Semaphore>,
    puts: AtomicU64,
}

struct Upload {
    path: RelPath,
    entry: Entry,
}

impl Publisher {
    pub fn new(store: Arc<dyn ObjectStore>, target: S3Target, concurrency: usize) -> Publisher {
        Publisher {
            store,
            target,
            concurrency: concurrency.max(1),
            memory: Arc::new(tokio::sync::Semaphore::new((MEMORY_BUDGET >> 20) as usize)),
            puts: AtomicU64::new(0),
        }
    }

    /// Brings the bucket to `snapshot` (the directory of a published snapshot and
    /// its manifest). `reconcile` asks the bucket itself even when its record says
    /// the last publish finished (`sync --verify-all`); `replace` are objects known
    /// to be damaged (`verify --url --repair`), uploaded again whatever the record says.
    pub async fn publish(
        &self,
        snapshot_dir: &Path,
        snapshot_id: &str,
        manifest: &Manifest,
        reconcile: bool,
        replace: &[RelPath],
    ) -> Result<BucketReport, PublishError> {
        let started = Instant::now();
        let mut report = BucketReport {
            url: self.target.url(),
            snapshot: Some(snapshot_id.to_string()),
            ..BucketReport::default()
        };
        let mut record = self.load_record().await?;
        if reconcile || !record.complete {
            report.checked = self.reconcile(&mut record, manifest).await?;
        }
        for p in replace {
            record.held.remove(p);
        }
        let plan = order::plan(&manifest.files, &record.held);
        report.unchanged = plan.unchanged;
        if plan.is_empty() {
            if !(record.complete && record.snapshot.as_deref() == Some(snapshot_id)) {
                record.complete = true;
                record.snapshot = Some(snapshot_id.to_string());
                self.write_record(&record).await?;
            }
            report.put_requests = self.puts.load(Ordering::Relaxed);
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        tracing::info!(
            bucket = %self.target.url(),
            uploads = plan.upload_count(),
            bytes = plan.upload_bytes(),
            deletes = plan.deletes.len(),
            "publishing to the bucket"
        );
        // From here until the end the bucket is between two snapshots: say so first,
        // so a run killed midway is followed by one that checks.
        record.complete = false;
        self.write_record(&record).await?;
        let BucketPlan {
            uploads, deletes, ..
        } = plan;
        for (wave, files) in uploads {
            self.upload_wave(wave, files, snapshot_dir, &mut record, &mut report)
                .await?;
        }
        // Deleted only now: the Release files that stopped listing them are in place.
        // Files within their grace are still in the manifest and are not here.
        if !deletes.is_empty() {
            report.deleted = self.delete(&deletes, &mut record).await?;
        }
        record.complete = true;
        record.snapshot = Some(snapshot_id.to_string());
        self.write_record(&record).await?;
        report.put_requests = self.puts.load(Ordering::Relaxed);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    async fn upload_wave(
        &self,
        wave: Wave,
        files: Vec<(RelPath, Entry)>,
        snapshot_dir: &Path,
        record: &mut BucketRecord,
        report: &mut BucketReport,
    ) -> Result<(), PublishError> {
        let total = files.len();
        let mut results = futures_util::stream::iter(files)
            .map(|(path, entry)| {
                let src = path.under(snapshot_dir);
                async move {
                    let up = Upload { path, entry };
                    let r = self.upload(&up, &src).await;
                    (up, r)
                }
            })
            .buffer_unordered(self.concurrency);
        let mut errors = Vec::new();
        let mut since_checkpoint = 0u64;
        let mut last_checkpoint = Instant::now();
        while let Some((up, result)) = results.next().await {
            match result {
                Ok(()) => {
                    report.uploaded += 1;
                    report.uploaded_bytes += up.entry.size;
                    record
                        .held
                        .insert(up.path, (up.entry.size, up.entry.sha256));
                    since_checkpoint += 1;
                    if since_checkpoint >= CHECKPOINT_EVERY
                        || last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
                    {
                        self.write_record(record).await?;
                        since_checkpoint = 0;
                        last_checkpoint = Instant::now();
                    }
                }
                Err(e) => errors.push(format!("{}: {e}", up.path)),
            }
        }
        drop(results);
        if !errors.is_empty() {
            // What did land is recorded, so the next run uploads only the rest.
            self.write_record(record).await?;
            return Err(PublishError::Failed {
                what: format!(
                    "uploading {} to {} ({total} objects; the next wave was not started, so readers still see the previous snapshot)",
                    wave.name(),
                    self.target.url()
                ),
                errors,
            });
        }
        tracing::debug!(wave = wave.name(), objects = total, "wave uploaded");
        Ok(())
    }

    /// Uploads one file, hashing it on the way: a mismatch with the manifest aborts
    /// before the object becomes visible.
    async fn upload(&self, up: &Upload, src: &Path) -> Result<(), String> {
        let key = self
            .target
            .key(up.path.as_str())
            .map_err(|e| e.to_string())?;
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::ContentType,
            content_type(up.path.as_str()).into(),
        );
        attributes.insert(
            Attribute::Metadata(SHA256_META.into()),
            hex::encode(up.entry.sha256).into(),
        );
        if up.entry.size <= SINGLE_PUT_MAX {
            self.put_whole(key, attributes, up, src).await
        } else {
            self.put_in_parts(key, attributes, up, src).await
        }
    }

    /// Uploads a small file with one PUT, read whole into memory.
    async fn put_whole(
        &self,
        key: object_store::path::Path,
        attributes: Attributes,
        up: &Upload,
        src: &Path,
    ) -> Result<(), String> {
        let _memory = self
            .memory
            .acquire_many(mib(up.entry.size))
            .await
            .map_err(|e| e.to_string())?;
        let bytes = tokio::fs::read(src)
            .await
            .map_err(|e| format!("reading {}: {e}", src.display()))?;
        check(
            &bytes.len().try_into().unwrap_or(u64::MAX),
            &Sha256::digest(&bytes).into(),
            &up.entry,
            src,
        )?;
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.store
            .put_opts(
                &key,
                PutPayload::from(bytes),
                PutOptions {
                    attributes,
                    ..PutOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Uploads a large file as a multipart upload, aborted if it fails.
    async fn put_in_parts(
        &self,
        key: object_store::path::Path,
        attributes: Attributes,
        up: &Upload,
        src: &Path,
    ) -> Result<(), String> {
        let size = up.entry.size;
        let part = PART_MIN.max(size.div_ceil(9_000).next_multiple_of(1 << 20));
        let _memory = self
            .memory
            .acquire_many(mib(part * (PARTS_IN_FLIGHT as u64 + 1)))
            .await
            .map_err(|e| e.to_string())?;
        self.puts.fetch_add(2, Ordering::Relaxed); // create + complete
        let upload = self
            .store
            .put_multipart_opts(
                &key,
                PutMultipartOptions {
                    attributes,
                    ..PutMultipartOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part as usize);
        match self.stream_parts(&mut writer, src, &up.entry, part).await {
            Ok(()) => {
                writer.finish().await.map_err(|e| e.to_string())?;
                Ok(())
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    async fn stream_parts(
        &self,
        writer: &mut WriteMultipart,
        src: &Path,
        entry: &Entry,
        part: u64,
    ) -> Result<(), String> {
        let mut file = tokio::fs::File::open(src)
            .await
            .map_err(|e| format!("opening {}: {e}", src.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading {}: {e}", src.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| e.to_string())?;
            let before = sent / part;
            writer.write(&buf[..n]);
            sent += n as u64;
            self.puts.fetch_add(sent / part - before, Ordering::Relaxed);
        }
        if !sent.is_multiple_of(part) {
            self.puts.fetch_add(1, Ordering::Relaxed);
        }
        check(&sent, &hasher.finalize().into(), entry, src)
    }

    async fn delete(
        &self,
        paths: &[RelPath],
        record: &mut BucketRecord,
    ) -> Result<u64, PublishError> {
        let mut keys = Vec::with_capacity(paths.len());
        for p in paths {
            keys.push(Ok(self.key(p.as_str())?));
        }
        let store = Arc::clone(&self.store);
        let results: Vec<_> = store
            .delete_stream(futures_util::stream::iter(keys).boxed())
            .collect()
            .await;
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(_) => {}
                // Already gone is what we wanted.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            self.write_record(record).await?;
            return Err(PublishError::Failed {
                what: format!("deleting removed objects from {}", self.target.url()),
                errors,
            });
        }
        for p in paths {
            record.held.remove(p);
        }
        Ok(paths.len() as u64)
    }

    /// After a publish that did not finish (or when asked): trusts only what the
    /// bucket shows. Listed objects the record lacks are asked for their SHA256;
    /// recorded ones that are gone are forgotten (uploaded again); unknown extras
    /// are recorded so the plan deletes them. Returns how many objects were asked.
    async fn reconcile(
        &self,
        record: &mut BucketRecord,
        manifest: &Manifest,
    ) -> Result<u64, PublishError> {
        let prefix = if self.target.prefix.is_empty() {
            None
        } else {
            Some(self.key("")?)
        };
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|source| self.err(source))?;
        let strip = |key: &str| -> Option<String> {
            let rel = if self.target.prefix.is_empty() {
                key
            } else {
                key.strip_prefix(self.target.prefix.as_str())?
                    .strip_prefix('/')?
            };
            (!rel.starts_with(".mirrorsync/")).then(|| rel.to_string())
        };
        let mut present: Held = Held::new();
        let mut to_ask = Vec::new();
        for meta in &listed {
            let Some(rel) = strip(meta.location.as_ref()) else {
                continue;
            };
            let Ok(path) = RelPath::new(&rel) else {
                tracing::warn!(key = %meta.location, "object with an unsafe name in the bucket; left alone");
                continue;
            };
            match (record.held.get(&path), manifest.files.get(&path)) {
                (Some(held), _) if held.0 == meta.size => {
                    present.insert(path, *held);
                }
                (_, Some(wanted)) if wanted.size == meta.size => {
                    to_ask.push((path, meta.location.clone()))
                }
                // Unknown or of another size: recorded as "something", so the plan
                // replaces it if wanted and deletes it if not.
                _ => {
                    present.insert(path, (meta.size, [0; 32]));
                }
            }
        }
        let asked = to_ask.len() as u64;
        let answers: Vec<(RelPath, Option<[u8; 32]>)> = futures_util::stream::iter(to_ask)
            .map(|(path, key)| async move {
                let sha = self.object_sha256(&key).await;
                (path, sha)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (path, sha) in answers {
            let size = manifest.files.get(&path).map_or(0, |e| e.size);
            present.insert(path, (size, sha.unwrap_or([0; 32])));
        }
        record.held = present;
        Ok(asked)
    }

    /// The SHA256 an object was uploaded with, from its metadata.
    async fn object_sha256(&self, key: &object_store::path::Path) -> Option<[u8; 32]> {
        let head = self
            .store
            .get_opts(
                key,
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            )
            .await
            .ok()?;
        let value = head
            .attributes
            .get(&Attribute::Metadata(SHA256_META.into()))?;
        let mut sha = [0u8; 32];
        hex::decode_to_slice(value.as_ref(), &mut sha).ok()?;
        Some(sha)
    }

    async fn load_record(&self) -> Result<BucketRecord, PublishError> {
        let key = self.key(RECORD_KEY)?;
        match self.store.get_opts(&key, GetOptions::default()).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|source| self.err(source))?;
                let text = String::from_utf8_lossy(&bytes);
                Ok(BucketRecord::parse(
                    &text,
                    &format!("{}{RECORD_KEY}", self.target.url()),
                )?)
            }
            // A bucket never published to: everything in it is checked.
            Err(object_store::Error::NotFound { .. }) => Ok(BucketRecord::default()),
            Err(source) => Err(self.err(source)),
        }
    }

    async fn write_record(&self, record: &BucketRecord) -> Result<(), PublishError> {
        let key = self.key(RECORD_KEY)?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "text/plain; charset=utf-8".into());
        attributes.insert(Attribute::CacheControl, "no-store".into());
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.store
            .put_opts(
                &key,
                PutPayload::from(record.render()),
                PutOptions {
                    attributes,
                    ..PutOptions::default()
                },
            )
            .await
            .map_err(|source| self.err(source))?;
        Ok(())
    }

    fn key(&self, rel: &str) -> Result<object_store::path::Path, PublishError> {
        if rel.is_empty() {
            return object_store::path::Path::parse(&self.target.prefix).map_err(|source| {
                PublishError::Key {
                    path: rel.to_string(),
                    source,
                }
            });
        }
        self.target.key(rel).map_err(|source| PublishError::Key {
            path: rel.to_string(),
            source,
        })
    }

    fn err(&self, source: object_store::Error) -> PublishError {
        PublishError::Store {
            url: self.target.url(),
            source,
        }
    }
}

fn mib(bytes: u64) -> u32 {
    (bytes.div_ceil(1 << 20).clamp(1, MEMORY_BUDGET >> 20)) as u32
}

fn check(size: &u64, sha256: &[u8; 32], entry: &Entry, src: &Path) -> Result<(), String> {
    if *size != entry.size || *sha256 != entry.sha256 {
        return Err(format!(
            "{} no longer matches its manifest (size {size}, expected {}); run `mirrorsync verify --repair`",
            src.display(),
            entry.size
        ));
    }
    Ok(())
}

/// What web front ends serving the bucket send as Content-Type.
fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e);
    match (name, ext) {
        ("InRelease" | "Release" | "SHA256SUMS", _) => "text/plain; charset=utf-8",
        (_, Some("json")) => "application/json",
        (_, Some("html" | "htm")) => "text/html; charset=utf-8",
        (_, Some("txt" | "sha256" | "info")) => "text/plain; charset=utf-8",
        (_, Some("gpg" | "sig" | "asc")) => "application/pgp-signature",
        (_, Some("deb" | "udeb" | "ddeb")) => "application/vnd.debian.binary-package",
        (_, Some("xz")) => "application/x-xz",
        (_, Some("gz")) => "application/gzip",
        (_, Some("zip")) => "application/zip",
        _ => "application/octet-stream",
    }
}
