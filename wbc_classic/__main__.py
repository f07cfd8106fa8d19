from wbc_classic.cli import console_main

console_main()
