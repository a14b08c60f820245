"""Pipelines that chain the methods (between the API and the methods): :mod:`.auto`, the one-button
denoiser that splits one time budget between training, distillation and inference."""
