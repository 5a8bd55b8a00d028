from alphacut.cli import main

main()
