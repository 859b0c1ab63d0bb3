"""Where data may live, and one clear line for where it may not yet.

hpt reads labelled image files from the local file system (a folder, a list, a CSV); `--data` streams tar shards,
a folder or prefix of images and a local list of image URLs from anywhere fsspec reaches (`shards.py`). A
labelled list whose rows are URLs (`--monitor-*`, `hpt eval`) is refused with one line: saying how to bring the
images to a local disk, with the package fsspec would need for that protocol when it is not installed (so the
user does not check the bucket instead). A zip or compressed tar given as `--data` is refused
the same way; an archive found beside loose images is listed among the skipped files with its reason, never
passed over in silence. A URL is shown without its user name, password or query string (where credentials and
signatures travel), so none reaches a console, a log or a record.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from hpt.errors import HptError, first_line

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".zip")
"""Archives a dataset is often shipped in (WebDataset shards are tars); not read, and never silently."""
ARCHIVE_REASON = "an archive: its images are not read here (extract them, or give .tar shards as --data alone)"
LOCAL_ONLY = (
    "labelled images are read from a local disk: copy them to one (fsspec's `get`, `aws s3 sync`) or mount the "
    "bucket (s3fs-fuse, gcsfuse, blobfuse2); --data alone streams (a folder or prefix of images, a list of their "
    "URLs, or WebDataset shards train-{000000..000099}.tar, much faster from a bucket)"
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


def carries_secrets(url: str) -> bool:
    """A URL with a user, a password, a query or a fragment: where credentials and signatures travel."""
    if "://" not in url:
        return False
    parts = urlsplit(url)
    return bool(parts.username or parts.password or parts.query or parts.fragment)


def refuse_url(spec: str, what: str) -> HptError:
    """The one line for a URL given where a local path is read: how to bring the images to a local disk, with
    the package fsspec needs for that protocol when it is not installed."""
    scheme = spec.split("://", 1)[0].lower()
    needs = missing_implementation(scheme)
    copy = f" (fsspec reaches {scheme}:// with {needs})" if needs else ""
    return HptError(f"{what} '{shown(spec)}' is on {scheme}://; {LOCAL_ONLY}{copy}")


def refuse_archive(spec: str, what: str) -> HptError:
    return HptError(
        f"{what} '{shown(spec)}' is an archive hpt does not stream (it streams uncompressed .tar shards): extract it "
        "into a folder (`tar -xf`, `unzip`) and give the folder, or write it as .tar shards"
    )


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def missing_implementation(scheme: str) -> str | None:
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
