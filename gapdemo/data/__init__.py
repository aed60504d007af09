"""Every image source behind one contract (sources.load_data -> LoadedData): synthetic pets, TFDS Cats vs Dogs
and a folder of images; their splits, decoding, the decoded-image cache, the tf.data pipeline and the data roots."""
