//! gradlens in the browser (see web/README.md).
