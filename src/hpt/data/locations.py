"""Where data may live, and one clear line for where it may not yet: URLs and archives.

hpt reads images from the local file system (a folder, a list, a CSV). A `--data` that is a URL (`s3://`, `gs://`,
`az://`, `https://`, ...) or a list whose rows are URLs is refused with one line: naming the package fsspec would
need for that protocol when it is not installed (so the user does not check the bucket instead), else saying how
to bring the images to a local disk. A tar or zip archive (WebDataset shards, an export) given as `--data` is
refused the same way; one found beside loose images is listed among the skipped files with its reason, never
passed over in silence. A URL is shown without its user name, password or query string (where credentials and
signatures travel), so none reaches a console, a log or a record.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from hpt.errors import HptError, first_line

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".zip")
"""Archives a dataset is often shipped in (WebDataset shards are tars); not read, and never silently."""
ARCHIVE_REASON = "an archive: its images are not read (extract them into the folder to use them)"
LOCAL_ONLY = (
    "hpt reads images from a local disk for now: copy them there (fsspec's `get`, `aws s3 sync`, `gsutil rsync`) or "
    "mount the bucket (s3fs-fuse, gcsfuse, blobfuse2) and give the local path"
)


def is_url(spec: str) -> bool:
    """A `scheme://...` location other than a local file (`file://` is a local path)."""
    scheme = spec.split("://", 1)[0] if "://" in spec else ""
    return bool(scheme) and scheme.lower() != "file" and scheme.replace("+", "").replace("-", "").isalnum()


def shown(url: str) -> str:
    """`url` without user information, query string or fragment: what may be printed or recorded."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def refuse_url(spec: str, what: str) -> HptError:
    """The one line for a URL given where a local path is read: how to bring the images to a local disk, with
    the package fsspec needs for that protocol when it is not installed."""
    scheme = spec.split("://", 1)[0].lower()
    needs = _missing_implementation(scheme)
    copy = f" (fsspec reaches {scheme}:// with {needs})" if needs else ""
    return HptError(f"{what} '{shown(spec)}' is on {scheme}://; {LOCAL_ONLY}{copy}")


def refuse_archive(spec: str, what: str) -> HptError:
    return HptError(
        f"{what} '{shown(spec)}' is an archive (WebDataset shards are tars): its images are not read yet; extract "
        "it into a folder (`tar -xf`, `unzip`) and give the folder"
    )


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _missing_implementation(scheme: str) -> str | None:
    """'s3fs (pip install s3fs)' when fsspec would need a package that is not installed; None otherwise."""
    try:
        import fsspec
    except ImportError:
        return "fsspec (pip install fsspec)"
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as exc:
        package = re.search(r"[Ii]nstall (\w[\w.-]*)", str(exc))  # fsspec's own words: "Install s3fs to access S3"
        return f"{package.group(1)} (pip install {package.group(1)})" if package else first_line(exc)
    except ValueError:
        return None  # a protocol fsspec does not know: the line says how to bring the data local
    return None
