"""Export station: a run folder -> a verified TFLite, ONNX or SavedModel bundle; quantization, TFLite
metadata, verification against Keras, and the benchmark."""
