"""python -m hyperim"""

from hyperim.cli import main

main()
