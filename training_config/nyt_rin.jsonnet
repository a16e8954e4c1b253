// RIN on NYT with exact match; the training file is not among ../shared/data (see nyt_star_rin.jsonnet).
local lib = import 'lib/common.libsonnet';

lib.base + lib.casrel('nyt', 'exact') + {
  model: lib.rin(50 + 50, rounds=3),
}
