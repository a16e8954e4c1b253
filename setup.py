"""The project is declared in pyproject.toml; this file only adds the optional C extension of the recurrent
encoders (joint_ere/modules/encoders/_cells.c, plain C without torch headers). Without a C compiler the install
still succeeds and the encoders use their torch-operator path."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("joint_ere.modules.encoders._cells", ["joint_ere/modules/encoders/_cells.c"],
                             extra_compile_args=["-O3", "-std=c99", "-fno-trapping-math", "-fopenmp-simd"], optional=True)])
