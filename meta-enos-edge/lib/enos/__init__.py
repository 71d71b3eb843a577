# meta-enos-edge's Python helpers (made importable by `addpylib` in conf/layer.conf).
