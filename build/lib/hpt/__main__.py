from hpt.cli import main

raise SystemExit(main())
