"""The project is declared in pyproject.toml; this file only adds the optional C extension of the recurrent
encoders (joint_ere/modules/encoders/_cells.c, plain C without torch headers). Without a C compiler the install
still succeeds and the encoders use their torch-operator path."""
from setuptools import Extension, setup

# -fno-trapping-math lets GCC vectorise the clamps of the polynomial exp; -fopenmp-simd only honours the
# `omp simd` reductions (no OpenMP runtime is linked).
FLAGS = ["-O3", "-std=c99", "-fno-trapping-math", "-fopenmp-simd"]

setup(ext_modules=[Extension("joint_ere.modules.encoders._cells", ["joint_ere/modules/encoders/_cells.c"],
                             extra_compile_args=FLAGS, optional=True)])
