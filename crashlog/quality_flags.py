"""What makes a recorded crash multiplier doubtful: the rules both sides of a flag share.

The ``round_multipliers`` projection sets a round's ``quality_flags`` (``off_grid``,
``disagreement``, ``low_ocr_confidence``) and the quality report (``analytics.quality``)
judges the same readings; both read their thresholds from here, so neither imports the other.
"""

from __future__ import annotations

#: A reading whose OCR confidence is below this is flagged ``low_ocr_confidence``.
LOW_OCR_CONFIDENCE = 0.8

__all__ = ["LOW_OCR_CONFIDENCE"]
