"""The hand stage: MediaPipe's palm detection and hand landmark models, offline in LiteRT. It finds, tracks
and crops the hand and gives its 21 landmarks, so that a model sees the hand and not the room
(`keras_sign.hands.detector.HandDetector`)."""
