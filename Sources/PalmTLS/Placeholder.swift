public enum PalmTLSPlaceholder {}
