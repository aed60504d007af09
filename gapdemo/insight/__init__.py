"""What the back-ends look at and where they go wrong, as arrays: feature maps, CAM, Grad-CAM, shift tests
(maps), the evaluation of a run (confusion, mistakes, shift consistency) and the evaluation's charts."""
