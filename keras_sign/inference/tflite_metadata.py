"""TFLite model metadata: the labels, the input's normalisation and a description inside the .tflite file.

    model = add_metadata(tflite_bytes, image_metadata(...), {"labels.txt": labels_bytes})
    read_metadata(model)["labels"]        # the class names, read back from the file alone

LiteRT's Support Library and MediaPipe Tasks' ImageClassifier read the `TFLITE_METADATA` buffer
(a flatbuffer of tflite-support's published metadata schema, file identifier "M001") and the
associated files, which the metadata spec packs as a zip archive appended to the model file. The
maintained writers (tflite-support, mediapipe's metadata_writers) do not install beside
TensorFlow 2.21, so this module writes the few tables an image classifier needs with the
`flatbuffers` package, following the schema's field order; every field used here is in the
schema since version 1.0.0, which is therefore the minimum parser version.
"""

import io
import zipfile

import flatbuffers
import numpy as np
from flatbuffers import number_types, table

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"
# Enum and union values of the schema (a union's type is its member's position, counting from 1).
TENSOR_AXIS_LABELS = 2
COLOR_SPACE_RGB = 1
CONTENT_IMAGE_PROPERTIES = 2
CONTENT_FEATURE_PROPERTIES = 1
PROCESS_UNIT_NORMALIZATION = 1


class _Writer:
    """Thin helpers over `flatbuffers.Builder` for tables of offsets, bytes and float vectors."""

    def __init__(self):
        self.builder = flatbuffers.Builder(1024)

    def string(self, text):
        return None if text is None else self.builder.CreateString(text)

    def floats(self, values):
        return self.builder.CreateNumpyVector(np.asarray(values, dtype=np.float32))

    def offsets(self, items):
        self.builder.StartVector(4, len(items), 4)
        for item in reversed(items):
            self.builder.PrependUOffsetTRelative(item)
        return self.builder.EndVector()

    def table(self, slots, offsets=None, bytes_=None, uints=None):
        """A table with `slots` fields: `offsets`, `bytes_` (int8) and `uints` map slot -> value."""
        builder = self.builder
        builder.StartObject(slots)
        for slot, value in (offsets or {}).items():
            if value is not None:
                builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        for slot, value in (uints or {}).items():
            builder.PrependUint32Slot(slot, value, 0)
        for slot, value in (bytes_ or {}).items():
            builder.PrependInt8Slot(slot, value, 0)
        return builder.EndObject()


def image_input(image_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
    """The TensorMetadata builder of an RGB image input. `mean`/`std` say how an app turns pixels into the
    input tensor (`(pixel - mean) / std`); keras-sign's models normalise inside, so raw pixels go in: mean 0,
    std 1."""

    def build(w):
        # ImageProperties (color_space 0, default_size 1 -> ImageSize width 0, height 1) in Content
        # (content_properties_type 0, content_properties 1), NormalizationOptions (mean 0, std 1) in a
        # ProcessUnit (options_type 0, options 1), Stats (max 0, min 1).
        size = w.table(2, uints={0: image_size, 1: image_size})
        properties = w.table(2, offsets={1: size}, bytes_={0: COLOR_SPACE_RGB})
        content = w.table(3, offsets={1: properties}, bytes_={0: CONTENT_IMAGE_PROPERTIES})
        normalization = w.table(2, offsets={0: w.floats(mean), 1: w.floats(std)})
        unit = w.table(2, offsets={1: normalization}, bytes_={0: PROCESS_UNIT_NORMALIZATION})
        stats = w.table(2, offsets={0: w.floats([255.0]), 1: w.floats([0.0])})
        return w.table(7, offsets={0: w.string("image"), 3: content, 4: w.offsets([unit]), 5: stats,
                                   1: w.string(f"RGB image, {image_size}x{image_size}, pixels 0-255")})

    return build


def feature_input(features):
    """The TensorMetadata builder of an input of `features` float32 landmark features of one hand
    (FeatureProperties: no normalisation, the app computes them)."""

    def build(w):
        content = w.table(3, offsets={1: w.table(0)}, bytes_={0: CONTENT_FEATURE_PROPERTIES})
        return w.table(7, offsets={0: w.string("landmarks"), 3: content, 1: w.string(
            f"{features} landmark features of one hand (model.json: preprocessing.hands.features)")})

    return build


def image_metadata(name, description, version, author, license_text, image_size, labels_file="labels.txt",
                   mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
    """The metadata flatbuffer of an RGB image classifier: one input image, one output of class scores."""
    return classifier_metadata(name, description, version, author, license_text, [image_input(image_size, mean, std)],
                               labels_file)


def classifier_metadata(name, description, version, author, license_text, inputs, labels_file="labels.txt"):
    """The metadata flatbuffer of a classifier whose inputs' TensorMetadata the builders `inputs` make (`image_input`,
    `feature_input`; a fusion model has both, in its inputs' order) and whose one output is class scores."""
    w = _Writer()
    # AssociatedFile: name 0, description 1, type 2
    labels = w.table(5, offsets={0: w.string(labels_file), 1: w.string("Class names, one per line, in output order")},
                     bytes_={2: TENSOR_AXIS_LABELS})
    # TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4, stats 5,
    # associated_files 6
    model_inputs = [build(w) for build in inputs]
    features = w.table(0)  # FeatureProperties has no fields
    score_content = w.table(3, offsets={1: features}, bytes_={0: CONTENT_FEATURE_PROPERTIES})
    score_stats = w.table(2, offsets={0: w.floats([1.0]), 1: w.floats([0.0])})
    scores = w.table(7, offsets={0: w.string("probability"), 1: w.string("Probabilities of the classes"),
                                 3: score_content, 5: score_stats, 6: w.offsets([labels])})
    # SubGraphMetadata: input_tensor_metadata 2, output_tensor_metadata 3
    subgraph = w.table(10, offsets={2: w.offsets(model_inputs), 3: w.offsets([scores])})
    # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
    # associated_files 6, min_parser_version 7
    root = w.table(8, offsets={0: w.string(name), 1: w.string(description), 2: w.string(version),
                               3: w.offsets([subgraph]), 4: w.string(author), 5: w.string(license_text),
                               7: w.string(MIN_PARSER_VERSION)})
    w.builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(w.builder.Output())


def add_metadata(tflite_model, metadata, associated_files):
    """The model with `metadata` in its `TFLITE_METADATA` buffer and `associated_files` (name -> bytes)
    zipped onto its end, as the metadata spec lays them out (any earlier metadata replaced)."""
    from keras_sign.inference.runtimes import import_export_dependency

    flatbuffer_utils = import_export_dependency("ai_edge_litert.tools.flatbuffer_utils")
    schema = import_export_dependency("ai_edge_litert.schema_py_generated")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] + [entry]
    output = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    output.seek(0, io.SEEK_END)
    with zipfile.ZipFile(output, "a", compression=zipfile.ZIP_STORED) as archive:  # appended after the model
        for name, data in associated_files.items():
            archive.writestr(name, data)
    return output.getvalue()


def _name(value):
    return value.decode() if isinstance(value, bytes) else value


def associated_files(tflite_model):
    """`{name: bytes}` of the files zipped onto a model's end (empty when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite_model)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


class _Table:
    """Read access to one table of a flatbuffer by slot number (the schema's field order)."""

    def __init__(self, data, position):
        self.table = table.Table(data, position)

    def _offset(self, slot):
        return self.table.Offset(4 + 2 * slot)

    def string(self, slot):
        offset = self._offset(slot)
        return self.table.String(offset + self.table.Pos).decode() if offset else None

    def byte(self, slot):
        offset = self._offset(slot)
        return self.table.Get(number_types.Int8Flags, offset + self.table.Pos) if offset else 0

    def child(self, slot):
        offset = self._offset(slot)
        return _Table(self.table.Bytes, self.table.Indirect(offset + self.table.Pos)) if offset else None

    def children(self, slot):
        offset = self._offset(slot)
        if not offset:
            return []
        start, count = self.table.Vector(offset), self.table.VectorLen(offset)
        return [_Table(self.table.Bytes, self.table.Indirect(start + 4 * i)) for i in range(count)]

    def floats(self, slot):
        offset = self._offset(slot)
        return self.table.GetVectorAsNumpy(number_types.Float32Flags, offset).tolist() if offset else []


def read_metadata(tflite_model):
    """What a model's metadata says, or None when it has none: `name`, `description`, `version`,
    `author`, `min_parser_version`, the names of its `inputs`, the image input's `mean`/`std`, the output's
    `label_files` and, when that file is zipped onto the model, the `labels`."""
    from keras_sign.inference.runtimes import import_export_dependency

    schema = import_export_dependency("ai_edge_litert.schema_py_generated")
    model = schema.Model.GetRootAs(tflite_model, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if _name(entry.Name()) == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            break
    else:
        return None
    if data[4:8] != FILE_IDENTIFIER:
        raise ValueError(f"the {METADATA_NAME} buffer is not a metadata flatbuffer (identifier {data[4:8]!r})")
    data = bytearray(data)
    root = _Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    subgraph = root.children(3)[0]
    inputs, scores = subgraph.children(2), subgraph.children(3)[0]
    normalization = next((unit.child(1) for tensor in inputs for unit in tensor.children(4)
                          if unit.byte(0) == PROCESS_UNIT_NORMALIZATION), None)
    label_files = [f.string(0) for f in scores.children(6) if f.byte(2) == TENSOR_AXIS_LABELS]
    files = associated_files(tflite_model)
    labels = files.get(label_files[0]) if label_files else None
    return {
        "name": root.string(0), "description": root.string(1), "version": root.string(2), "author": root.string(4),
        "min_parser_version": root.string(7), "inputs": [tensor.string(0) for tensor in inputs],
        "mean": normalization.floats(0) if normalization else None,
        "std": normalization.floats(1) if normalization else None,
        "label_files": label_files,
        "labels": labels.decode("utf-8").splitlines() if labels is not None else None,
    }
