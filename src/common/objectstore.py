"""Object storage (S3 and S3-compatible stores) for the uploader and the analysis commands.

One place holds everything finemon does with a bucket: parsing ``s3://bucket/prefix``, making a
boto3 client from the standard AWS credential chain (environment, shared files, web identity as
in an EKS pod with IRSA: ``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_TOKEN_FILE``, instance
metadata), uploading a file so that the store verifies its bytes, checking what the store holds,
and pyarrow's S3 filesystem with which the analysis commands read objects in place.

boto3 is imported only when a client is made (the ``s3`` extra): importing this module costs
nothing, and ``finemon run`` itself never imports boto3 at all (the uploader is a separate
process, :mod:`monitor.shipping`).

Verification: a single PUT carries ``Content-MD5``, so the store refuses bytes that differ from
the file's; a multipart upload sends ``Content-MD5`` with every part. Every object also carries
the MD5 of the whole file as user metadata (``x-amz-meta-finemon-md5``), and :meth:`ObjectStore.
verify` checks the stored object's size and that metadata with a HEAD before anything local is
deleted. (The ETag is the MD5 only for single-part objects without SSE-KMS, so it is used only
for objects that lack the metadata.)

Every store failure (network, credentials, HTTP error) is raised as :class:`StoreError` with a
one-line message; local file problems stay ``OSError``.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from common.contract import FILE_SUFFIX, PARTITION_KEYS, SESSIONS_DIR

#: User metadata key holding the MD5 (hex) of the whole file.
MD5_METADATA = "finemon-md5"
#: Files larger than this go up in parts of this size (S3's smallest part is 5 MiB).
DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024
MIN_PART_SIZE_BYTES = 5 * 1024 * 1024
#: Install hint for the ``s3`` extra.
S3_INSTALL_HINT = "pip install 'finemon[s3]'"
#: The mirror's record of what it downloaded (hidden: dataset readers skip it).
MIRROR_INDEX = ".finemon-mirror.json"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_HASH_CHUNK = 1024 * 1024


class StoreError(Exception):
    """The object store failed or refused a request; the message is one line."""


class MissingBoto3Error(StoreError):
    """boto3 (the ``s3`` extra) is not installed."""


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing ``/``; may be empty)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relative: str) -> str:
        """The object key of ``relative`` (a ``/``-separated path under the output dir)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str:
        """Inverse of :meth:`key`."""
        return key[len(self.prefix) + 1 :] if self.prefix else key


def add_store_arguments(group: argparse._ActionsContainer) -> None:
    """``--endpoint`` and ``--region`` of an ``s3://`` DIR (into ``args.endpoint`` and
    ``args.region``), spelled also as ``finemon run``'s ``--upload-endpoint``/``--upload-region``.
    """
    group.add_argument(
        "--endpoint",
        "--upload-endpoint",
        dest="endpoint",
        metavar="URL",
        help="endpoint of an S3-compatible store, as finemon run's --upload-endpoint "
        "(default: AWS S3)",
    )
    group.add_argument(
        "--region",
        "--upload-region",
        dest="region",
        metavar="REGION",
        help="the bucket's region (default: the AWS chain's, e.g. $AWS_REGION)",
    )


def is_s3_url(text: str) -> bool:
    """Whether ``text`` names an object store location (``s3://`` or ``s3a://``)."""
    return text.startswith(("s3://", "s3a://"))


def parse_s3_url(text: str) -> S3Location:
    """``s3://bucket[/prefix]`` (or ``s3a://``) as an :class:`S3Location`; ValueError otherwise."""
    scheme, sep, rest = text.strip().partition("://")
    if not sep or scheme not in ("s3", "s3a"):
        raise ValueError(f"invalid object store URL {text!r}: expected s3://BUCKET[/PREFIX]")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"invalid object store URL {text!r}: {bucket!r} is not a bucket name")
    prefix = "/".join(part for part in prefix.split("/") if part)
    if any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(f"invalid object store URL {text!r}: '.' or '..' in the prefix")
    return S3Location(bucket, prefix)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How to reach the store: ``endpoint_url`` for an S3-compatible store (path-style
    addressing), ``region`` (default: the AWS chain's, e.g. ``AWS_REGION``)."""

    endpoint_url: str | None = None
    region: str | None = None
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """What the store says about one object."""

    key: str
    size: int
    etag: str
    md5: str | None  # from our metadata; None when a HEAD was not made or it lacks it
    #: When it was stored (seconds since 1970), from a LIST; None from a HEAD.
    last_modified_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class LocalDigest:
    """Size and MD5 of a local file, read through one open descriptor."""

    size: int
    md5_hex: str
    inode: int
    mtime_ns: int


def file_md5(f: IO[bytes]) -> str:
    """MD5 (hex) of the rest of ``f``."""
    import hashlib  # noqa: PLC0415 - loads OpenSSL (3 MB): never in finemon run's own process

    digest = hashlib.md5(usedforsecurity=False)
    while chunk := f.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def digest_of(f: IO[bytes]) -> LocalDigest:
    """Size, MD5, inode and mtime of the open file ``f`` (read from its start; raises OSError)."""
    st = os.fstat(f.fileno())
    f.seek(0)
    md5 = file_md5(f)
    return LocalDigest(size=st.st_size, md5_hex=md5, inode=st.st_ino, mtime_ns=st.st_mtime_ns)


def _b64_md5(data: bytes) -> str:
    import hashlib  # noqa: PLC0415 - see file_md5

    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def make_client(settings: StoreSettings) -> Any:
    """A boto3 S3 client (standard credential chain). Raises MissingBoto3Error without boto3."""
    try:
        import boto3  # noqa: PLC0415 - the s3 extra, only where a store is used
        from botocore.config import Config as BotoConfig  # noqa: PLC0415
    except ImportError as exc:
        raise MissingBoto3Error(f"boto3 is not installed ({S3_INSTALL_HINT})") from exc
    options: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_seconds,
        "read_timeout": settings.read_timeout_seconds,
        # finemon retries with its own capped backoff; botocore's few quick retries only
        # smooth over a single dropped connection.
        "retries": {"max_attempts": 2, "mode": "standard"},
        "max_pool_connections": 2,
    }
    if settings.endpoint_url:
        # S3-compatible stores (MinIO, Ceph, moto...) want path-style URLs, and many do not
        # take the CRC32 trailers newer botocore adds by default: Content-MD5 already makes
        # the store check the bytes.
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        config=BotoConfig(**options),
    )


def _store_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    return (BotoCoreError, ClientError)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class ObjectStore:
    """Operations on one bucket and prefix. Every method raises :class:`StoreError` when the
    store fails (one-line message) and OSError for a local file problem."""

    def __init__(
        self,
        location: S3Location,
        settings: StoreSettings | None = None,
        *,
        client: Any = None,
        part_size_bytes: int = DEFAULT_PART_SIZE_BYTES,
    ) -> None:
        self.location = location
        self.settings = settings or StoreSettings()
        self.client = make_client(self.settings) if client is None else client
        self.part_size_bytes = max(MIN_PART_SIZE_BYTES, part_size_bytes)
        self._errors = _store_errors()
        #: Called with (part number, parts) after each part of a multipart upload (tests, logs).
        self.on_part: Any = None

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{what} {self.location.bucket}: {_one_line(exc)}")

    # ------------------------------------------------------------------ reading
    def head(self, key: str) -> RemoteObject | None:
        """The object at ``key`` (with our MD5 metadata), or None when there is none."""
        try:
            reply = self.client.head_object(Bucket=self.location.bucket, Key=key)
        except self._errors as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(f"HEAD {key} in", exc) from None
        metadata = {k.lower(): v for k, v in (reply.get("Metadata") or {}).items()}
        return RemoteObject(
            key=key,
            size=int(reply["ContentLength"]),
            etag=str(reply.get("ETag", "")).strip('"'),
            md5=metadata.get(MD5_METADATA),
        )

    def list_objects(self, under: str = "") -> Iterator[RemoteObject]:
        """Every object whose key starts with ``prefix/under`` (paginated LIST; no metadata)."""
        prefix = self.location.key(under) if under else self.location.prefix
        if prefix and not prefix.endswith("/") and not under:
            prefix += "/"
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    stored = item.get("LastModified")
                    yield RemoteObject(
                        key=str(item["Key"]),
                        size=int(item["Size"]),
                        etag=str(item.get("ETag", "")).strip('"'),
                        md5=None,
                        last_modified_seconds=None if stored is None else stored.timestamp(),
                    )
        except self._errors as exc:
            raise self._fail(f"LIST {prefix or '/'} in", exc) from None

    def matches(self, remote: RemoteObject | None, local: LocalDigest) -> bool:
        """Whether ``remote`` holds exactly ``local``'s bytes: same size, and our MD5 metadata
        (or, without it, a plain-MD5 ETag) equal to the file's MD5. A listed object without
        metadata is looked at again with a HEAD when its ETag is not a plain MD5."""
        if remote is None or remote.size != local.size:
            return False
        if remote.md5 is not None:
            return remote.md5 == local.md5_hex
        if remote.etag == local.md5_hex:
            return True
        if "-" in remote.etag or len(remote.etag) != 32:  # multipart or KMS: ask for metadata
            fresh = self.head(remote.key)
            return fresh is not None and fresh.md5 == local.md5_hex and fresh.size == local.size
        return False

    def verify(self, key: str, local: LocalDigest) -> bool:
        """HEAD ``key``: True when it holds ``local``'s size and MD5."""
        return self.matches(self.head(key), local)

    def download(self, key: str, destination: Path) -> None:
        """Download ``key`` to ``destination`` through a hidden temporary file and a rename."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        temp = destination.with_name(f".{destination.name}.download")
        try:
            self.client.download_file(self.location.bucket, key, str(temp))
            os.replace(temp, destination)
        except self._errors as exc:
            raise self._fail(f"GET {key} from", exc) from None
        finally:
            try:
                temp.unlink()
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ writing
    def put(self, f: IO[bytes], key: str, local: LocalDigest) -> None:
        """Upload the open file ``f`` (whose digest is ``local``) to ``key``; the store checks
        every byte against Content-MD5. Files above the part size go up in parts."""
        metadata = {MD5_METADATA: local.md5_hex}
        if local.size > self.part_size_bytes:
            self._put_multipart(f, key, local, metadata)
            return
        f.seek(0)
        data = f.read()
        if len(data) != local.size:
            raise OSError(f"{key}: the file changed while it was read")
        try:
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=data,
                ContentMD5=_b64_md5(data),
                Metadata=metadata,
                ContentType=_content_type(key),
            )
        except self._errors as exc:
            raise self._fail(f"PUT {key} to", exc) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload the small object ``data`` to ``key`` (checked by Content-MD5)."""
        try:
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=data,
                ContentMD5=_b64_md5(data),
                ContentType="application/octet-stream",
            )
        except self._errors as exc:
            raise self._fail(f"PUT {key} to", exc) from None

    def get_bytes(self, key: str) -> bytes | None:
        """The bytes of the small object ``key``, None when there is none."""
        try:
            reply = self.client.get_object(Bucket=self.location.bucket, Key=key)
            return bytes(reply["Body"].read())
        except self._errors as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(f"GET {key} from", exc) from None

    def copy(self, source_key: str, key: str) -> None:
        """Copy ``source_key`` to ``key`` in the store (its metadata too; one request, for
        objects up to 5 GiB)."""
        try:
            self.client.copy_object(
                Bucket=self.location.bucket,
                Key=key,
                CopySource={"Bucket": self.location.bucket, "Key": source_key},
                MetadataDirective="COPY",
            )
        except self._errors as exc:
            raise self._fail(f"COPY {source_key} to {key} in", exc) from None

    def delete(self, key: str) -> None:
        """Delete ``key`` (nothing happens when there is none)."""
        try:
            self.client.delete_object(Bucket=self.location.bucket, Key=key)
        except self._errors as exc:
            raise self._fail(f"DELETE {key} in", exc) from None

    def _put_multipart(
        self, f: IO[bytes], key: str, local: LocalDigest, metadata: dict[str, str]
    ) -> None:
        bucket = self.location.bucket
        self._abort_stale_uploads(key)
        try:
            started = self.client.create_multipart_upload(
                Bucket=bucket, Key=key, Metadata=metadata, ContentType=_content_type(key)
            )
        except self._errors as exc:
            raise self._fail(f"multipart PUT {key} to", exc) from None
        upload_id = started["UploadId"]
        parts: list[dict[str, Any]] = []
        count = -(-local.size // self.part_size_bytes)
        try:
            f.seek(0)
            for number in range(1, count + 1):
                data = f.read(self.part_size_bytes)
                reply = self.client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=_b64_md5(data),
                )
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
                if self.on_part is not None:
                    self.on_part(number, count)
            self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except self._errors as exc:
            self._abort(key, upload_id)
            raise self._fail(f"multipart PUT {key} to", exc) from None

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.location.bucket, Key=key, UploadId=upload_id
            )
        except self._errors:
            pass  # the store is unreachable: _abort_stale_uploads cleans up next time

    def _abort_stale_uploads(self, key: str) -> None:
        """Abort unfinished multipart uploads of ``key`` (left by a killed uploader): no parts
        are kept, and the store stops billing them."""
        try:
            reply = self.client.list_multipart_uploads(Bucket=self.location.bucket, Prefix=key)
        except self._errors as exc:
            raise self._fail(f"LIST uploads of {key} in", exc) from None
        for upload in reply.get("Uploads", ()):
            if upload.get("Key") == key:
                self._abort(key, str(upload["UploadId"]))

    def unfinished_uploads(self) -> list[str]:
        """Keys with a multipart upload in progress under the prefix."""
        try:
            reply = self.client.list_multipart_uploads(
                Bucket=self.location.bucket, Prefix=self.location.prefix
            )
        except self._errors as exc:
            raise self._fail("LIST uploads in", exc) from None
        return [str(upload["Key"]) for upload in reply.get("Uploads", ())]


def is_dataset_key(relative: str) -> bool:
    """Whether ``relative`` (a key under the prefix) is a data file or a run manifest: a
    ``dt=`` partition's visible ``*.parquet``, or ``_sessions/*.json``."""
    parts = relative.split("/")
    if parts[0] == SESSIONS_DIR:
        return len(parts) == 2 and parts[1].endswith(".json") and not parts[1].startswith(".")
    return (
        parts[0].startswith(f"{PARTITION_KEYS[0]}=")
        and not any(part.startswith((".", "_")) for part in parts)
        and parts[-1].endswith(FILE_SUFFIX)
    )


def _content_type(key: str) -> str:
    return "application/json" if key.endswith(".json") else "application/vnd.apache.parquet"


# ---------------------------------------------------------------------- reading in place
def arrow_filesystem(location: S3Location, settings: StoreSettings) -> Any:
    """pyarrow's S3 filesystem over ``location``'s bucket, for reading objects in place by byte
    ranges (``finemon query/summary/view/mcp s3://...``): ``settings``' endpoint (path-style
    addressing) and region, its timeouts, two attempts per request.

    Credentials come from the standard AWS chain, the one boto3 and the uploader use. botocore
    looks first: static credentials it finds (environment, shared files) are handed to pyarrow
    as they are; refreshable ones (web identity as with IRSA, an instance or container role,
    SSO) are left to pyarrow's own chain, which finds the same and renews them while a viewer
    stays open. Without a region (neither ``settings`` nor the AWS configuration) and without
    an endpoint, the bucket's region is asked of AWS.

    Raises :class:`MissingBoto3Error` without boto3, :class:`StoreError` (one line) when no
    credentials are found or the bucket's region cannot be resolved.
    """
    try:
        import botocore.session  # noqa: PLC0415 - the s3 extra, only where a store is used
        from botocore.credentials import RefreshableCredentials  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError  # noqa: PLC0415
    except ImportError as exc:
        raise MissingBoto3Error(f"boto3 is not installed ({S3_INSTALL_HINT})") from exc
    from urllib.parse import urlsplit  # noqa: PLC0415

    import pyarrow.fs  # noqa: PLC0415 - a core dependency, only needed here

    session = botocore.session.Session()
    try:
        credentials = session.get_credentials()
        region = settings.region or session.get_config_variable("region")
    except BotoCoreError as exc:
        raise StoreError(f"AWS credentials: {_one_line(exc)}") from None
    if credentials is None:
        raise StoreError(
            "no AWS credentials found (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared "
            "credentials file or AWS_PROFILE, a web identity or an instance role)"
        )
    options: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_seconds,
        "request_timeout": settings.read_timeout_seconds,
        "retry_strategy": pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=2),
    }
    if not isinstance(credentials, RefreshableCredentials):
        frozen = credentials.get_frozen_credentials()
        options["access_key"] = frozen.access_key
        options["secret_key"] = frozen.secret_key
        if frozen.token:
            options["session_token"] = frozen.token
    if settings.endpoint_url:
        endpoint = urlsplit(settings.endpoint_url)
        options["endpoint_override"] = endpoint.netloc or endpoint.path
        options["scheme"] = endpoint.scheme or "https"
    elif not region:
        try:
            region = pyarrow.fs.resolve_s3_region(location.bucket)
        except OSError as exc:
            raise StoreError(f"the region of {location.bucket}: {_one_line(exc)}") from None
    if region:
        options["region"] = region
    return pyarrow.fs.S3FileSystem(**options)
