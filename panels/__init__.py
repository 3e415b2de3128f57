"""Live panels, each kind defined once — what it reads, how it is built, how it fails, whether its
answer is shared — and placed by pages (overview, district) and displays (walls, kiosks)."""

from panels.areas import AREAS
from panels.feed import FEED
from panels.markers import MARKERS
from panels.ranking import RANKING
from panels.tiles import TILES
from panels.timeline import TIMELINE
from panels.vitals import VITALS
from panels.warnings import WARNINGS

__all__ = ["AREAS", "FEED", "MARKERS", "RANKING", "TILES", "TIMELINE", "VITALS", "WARNINGS"]
