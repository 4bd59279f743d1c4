"""Pure array functions of the pack: keypoints, tracking, smoothing, retargeting, drawing, masks,
resolution and segment arithmetic. Nothing here imports the host, onnxruntime or sam2."""
