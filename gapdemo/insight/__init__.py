"""What the back-ends look at and where they go wrong, as arrays: feature maps, CAM, Grad-CAM, shift tests
(maps), the maths on predictions (confusion, per-class numbers, mistakes: predictions), the evaluation of a run
(its test split, shift consistency: evaluation) and the evaluation's charts."""
