"""Side-by-side benchmarks: Vora against a reference, alternately, in one run (`make bench`)."""
