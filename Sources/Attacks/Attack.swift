import JEMCore
