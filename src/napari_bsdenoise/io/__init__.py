"""Reading and writing images and stores (TIFF, OME-TIFF, PNG/JPEG, zarr) with their metadata.

Core layer: numpy, tifffile, zarr and Pillow only; no torch, nothing of napari.
"""
