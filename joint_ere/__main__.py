import sys

from joint_ere.commands import main

sys.exit(main())
