"""Real cameras behind one interface (`base.FrameSource`): OpenCV (USB, RTSP, HTTP, files), GStreamer
pipelines, Intel RealSense, image folders; frame validation (`health`), device clocks (`clock`) and
image files (`image_files`). The simulated belt is a source too, in `edge.simulator`; the site's
pair of cameras is built by `edge.capture.cameras.build_sources`."""
