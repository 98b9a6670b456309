from pycam.cli.main import main

raise SystemExit(main())
