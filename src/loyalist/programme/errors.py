from loyalist.errors import Conflict, ValidationFailed


class ProgrammeInvalid(ValidationFailed):
    code = "programme_invalid"
    title = "The programme document is not valid"


class NoProgramme(Conflict):
    code = "no_programme"
    title = "No programme has been applied yet"
