"""The tutorial's four claims, in the order they are measured and shown: the one home of their titles.

Every claims result is keyed by Claim.key; the command prints each heading above its verdict, the
Claims tab shows heading and method above each chart, and the charts number their titles from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PooledMeasure:
    """One per-run number that pooling compares between back-ends, and which way favours the claim."""

    key: str  # names the measure in a pooled result (gapdemo.claims.pool reads it from each run's measures)
    label: str  # what it is, in a few words
    # Which value of the global-pooling back-end (GAP) the claim predicts against a dense one (FC): "lower" or
    # "higher". A pair's difference is dense minus pooling (FC - GAP), so "lower" holds when the whole 95%
    # interval lies above 0, "higher" when it lies below 0.
    better: str
    unit: str  # how the number reads: "points" (a fraction shown x 100), "ms" (seconds shown x 1000), "per epoch"


@dataclass(frozen=True)
class Claim:
    """One claim of the tutorial and how gapdemo measures it."""

    key: str  # keys the claim's section of a result, its verdict, figure and table
    number: int  # 1-based position in the tutorial's list, shown in headings and chart titles
    title: str  # the claim in a few words
    method: str  # what is measured and how, in a sentence or three, shown under the heading
    # The per-run numbers pooling tests, the first deciding the claim's verdict; the rest are reported beside it.
    pooled: tuple[PooledMeasure, ...] = ()

    @property
    def heading(self) -> str:
        """'1. Far fewer parameters, faster training'."""
        return f"{self.number}. {self.title}"


CLAIMS: dict[str, Claim] = {claim.key: claim for claim in (
    Claim("parameters", 1, "Far fewer parameters, faster training",
          "Back-end parameters at the chosen image size, and the median time of one Adam step of each "
          "back-end's own model on the same batch (after warm-up).",
          (PooledMeasure("step_seconds", "seconds per training step", "lower", "ms"),)),
    Claim("overfitting", 2, "Less overfitting",
          "Training accuracy (as Keras reports it during the epoch) minus validation accuracy after every "
          "epoch: the bigger the gap, the more the back-end memorised its training images. The verdict also gives "
          "the slope of validation loss over the last half of training (rising = overfitting).",
          (PooledMeasure("final_gap", "final train - validation accuracy gap", "lower", "points"),
           PooledMeasure("val_loss_slope", "validation-loss slope over the last half of training", "lower",
                         "per epoch"))),
    Claim("localization", 3, "Feature maps become category confidence maps",
          "On the synthetic pets, where each object's box is known: how often the peak of each back-end's "
          "map (CAM for GAP/GMP, Grad-CAM for the others) falls inside the box (pointing game), and how "
          "much of the map's positive energy lies inside it. A map that is the same everywhere scores "
          "the box's share of the image (dashed line).",
          (PooledMeasure("pointing_game", "share of map peaks inside the object box", "higher", "points"),
           PooledMeasure("energy_in_box", "share of map energy inside the object box", "higher", "points"))),
    Claim("translation", 4, "More robust to translation",
          "Left: test accuracy when every test image is moved left or right by 0–24 pixels (borders "
          "reflected). Middle: trained on synthetic pets whose objects all sit in the left half, then "
          "tested on held-out left-half objects and on right-half objects it never saw there. Right: shift "
          "consistency (Zhang 2019), the share of test images whose predicted class stays the same when the "
          "image moves 1–16 pixels left or right; a network that pools in steps of 8 pixels may hold its "
          "answers better at 8 and 16 than in between.",
          (PooledMeasure("largest_shift_drop", "accuracy lost at the largest shift", "lower", "points"),
           PooledMeasure("consistency_1px", "share of predictions unchanged by a 1 px shift", "higher", "points"))),
)}


def check_claim(key: str) -> Claim:
    """Return the registered claim for key, or raise ValueError naming the valid keys."""
    if key not in CLAIMS:
        raise ValueError(f"unknown claim {key!r}; valid claims: {', '.join(CLAIMS)}")
    return CLAIMS[key]
