"""The gallery as it is now: reloaded when files in the destinations directory are added, replaced or removed.

A booth changes its portraits per event, per sponsor, per hour; a restart would lose the warm GPU. The
directory is polled (inotify does not see a Kubernetes ConfigMap's symlink swap, and not every volume
supports it); only changed files are decoded and detected again, off the request path, and the new view
replaces the old one whole. A request reads the view once, so it sees the old gallery or the new one,
never a mixture.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GalleryUnavailable
from ..models.model_calls import Loaded, ModelCalls
from .bounds import GalleryBounds, skipped
from .index import INDEX_NAME, read_index
from .portraits import Decode, Destination, Gallery, listing, read_regular_file
from .prepared_output import PreparedOutput

logger = logging.getLogger(__name__)
Listing = dict[str, tuple[int, int, int]]
Prepare = Callable[[Destination], PreparedOutput]


@dataclass(frozen=True)
class GalleryView:
    """One consistent gallery: its destinations, each usable one's prepared output, and the files they came from."""

    gallery: Gallery
    outputs: dict[str, PreparedOutput] = field(default_factory=dict)
    listing: Listing = field(default_factory=dict)


class LiveGallery:
    """Holds the current view and replaces it when the directory changes."""

    def __init__(self, directory: Path, models: ModelCalls, decode: Decode, max_bytes: int, prepare: Prepare,
                 bounds: GalleryBounds = GalleryBounds(), models_loaded: Loaded | None = None) -> None:
        self.directory = directory
        self.models_loaded = models_loaded or {}
        self.bounds = bounds
        self.models = models
        self.decode = decode
        self.max_bytes = max_bytes
        self.prepare = prepare
        self.view = GalleryView(Gallery([]))
        self._problem: str | None = None
        self._listed = False
        self._reloading = asyncio.Lock()  # the poll and an operator's write never analyse at once

    async def reload(self) -> bool:
        """Analyse what changed since the last view and publish the new view; False when nothing changed."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> bool:
        old = self.view
        now = await asyncio.to_thread(listing, self.directory, self._listed)  # an empty directory is warned of once
        self._listed = True
        if now == old.listing:
            return False
        index = old.gallery.index
        if now.get(INDEX_NAME) != old.listing.get(INDEX_NAME):
            index = await asyncio.to_thread(read_index, self.directory, read_regular_file)
        images, before = _images(now), _images(old.listing)
        unchanged = frozenset(name for name, stamp in images.items() if before.get(name) == stamp)
        retried = {name for name in unchanged if skipped(old.gallery.destinations[name].reason)}  # room may have freed
        kept = [old.gallery.destinations[name] for name in unchanged - retried]
        changed = [self.directory / name for name in images if name not in unchanged or name in retried]
        gallery = await Gallery.load(changed, self.models, self.decode, self.max_bytes, kept, index, self.bounds,
                                     self.models_loaded)
        outputs = await asyncio.to_thread(self._outputs, gallery, old.outputs, unchanged)
        self.view = GalleryView(gallery, outputs, now)
        added, removed = images.keys() - before.keys(), before.keys() - images.keys()
        replaced = images.keys() - added - unchanged
        if old.listing or removed:
            logger.info("gallery reloaded: added %s, replaced %s, removed %s; %d usable",
                        sorted(added), sorted(replaced), sorted(removed), len(outputs))
        return True

    async def watch(self, every_s: float) -> None:
        """Reload whenever the directory changes, until cancelled; a failure is logged once and retried."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.reload()
                self._problem = None
            except GalleryUnavailable as exc:
                self._report(str(exc))
            except Exception as exc:  # keep serving the last good gallery whatever went wrong
                self._report(f"{type(exc).__name__}: {exc}")

    def _outputs(self, gallery: Gallery, previous: dict[str, PreparedOutput],
                 unchanged: frozenset[str]) -> dict[str, PreparedOutput]:
        return {name: previous[name] if name in unchanged and name in previous else self.prepare(d)
                for name, d in gallery.destinations.items() if d.faces}

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            logger.error("gallery not reloaded, the last one stays in use: %s", problem)
        self._problem = problem


def _images(found: Listing) -> Listing:
    return {name: stamp for name, stamp in found.items() if name != INDEX_NAME}
