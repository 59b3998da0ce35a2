"""Label maps: emotion strings (as readers produce them, lower-case) -> class names.

Emotions not in a map are excluded from that protocol (and counted), never
silently relabelled.
"""
from __future__ import annotations

MEGC3 = {"negative": "negative", "positive": "positive", "surprise": "surprise"}

# MEGC2019 rule for single databases (the official 442-sample list, not this
# rule, defines the composite; see ../shared/papers/README.md).
MEGC3_FROM_EMOTION = {
    "repression": "negative", "anger": "negative", "contempt": "negative",
    "disgust": "negative", "fear": "negative", "sadness": "negative",
    "happiness": "positive", "surprise": "surprise",
    **MEGC3,
}

CASME2_5 = {e: e for e in ("happiness", "surprise", "disgust", "repression", "others")}
CASME2_7 = {e: e for e in ("others", "disgust", "happiness", "repression", "surprise", "sadness", "fear")}

# D-FACE's CAS(ME)^3 4-class setting: negative (anger, disgust, fear, sad), positive
# (happy), surprise, others.
CASME3_4 = {
    "anger": "negative", "disgust": "negative", "fear": "negative", "sad": "negative",
    "sadness": "negative", "happy": "positive", "happiness": "positive",
    "surprise": "surprise", "others": "others",
}

LABEL_SETS = {
    "megc3": (MEGC3_FROM_EMOTION, ("negative", "positive", "surprise")),
    "casme2-5": (CASME2_5, ("happiness", "surprise", "disgust", "repression", "others")),
    "casme2-7": (CASME2_7, ("others", "disgust", "happiness", "repression", "surprise", "sadness", "fear")),
    "casme3-4": (CASME3_4, ("negative", "positive", "surprise", "others")),
}
