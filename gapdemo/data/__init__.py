"""Every image source behind one contract (sources.load_data -> LoadedData): synthetic pets, TFDS Cats vs Dogs
and a folder of images; what a DataConfig must be to load (checks), their splits, decoding, the decoded-image
cache, the tf.data pipeline and the data roots."""
