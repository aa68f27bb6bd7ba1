from accolade.cli import main

raise SystemExit(main())
