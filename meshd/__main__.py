from meshd.cli import main; import sys; sys.exit(main())
