from clipshift.cli.main import main

raise SystemExit(main())
