"""Video I/O without torch: sources (decode), targets (what ``-o`` means) and sinks (encode).

``source``  opens a video file, a folder of images or one image and yields RGB frames;
``target``  resolves and checks the output path;
``sink``    writes frames atomically, keeping timing, rotation, colour tags and audio;
``images``  still-image decoding shared with the reference loader.
"""
