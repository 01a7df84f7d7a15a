def compare(*a, **k): raise NotImplementedError
class Report: pass
