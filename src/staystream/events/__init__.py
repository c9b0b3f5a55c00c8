"""Events as they arrive: decoding, validation and normalization into columns; money and FX."""
